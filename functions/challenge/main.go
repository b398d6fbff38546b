// Command challenge is the certflow Lambda function that serves ACME HTTP-01
// key authorizations from the certflow table. It only wires: see
// internal/wiring.Challenge.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("challenge", wiring.Challenge) }
