// Command preflight is the certflow Lambda function that checks a domain points at the edge and CAA permits the CA.
// It only wires: see internal/function.Preflight.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("preflight", function.Preflight) }
