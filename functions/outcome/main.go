// Command outcome is the certflow Lambda function that records failures, quarantines and issuances and tells the platform.
// It only wires: see internal/function.Outcome.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("outcome", function.Outcome) }
