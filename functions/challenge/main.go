// Command challenge is the certflow Lambda function that serves ACME HTTP-01 key authorizations from the certflow table.
// It only wires: see internal/function.Challenge.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("challenge", function.Challenge) }
