// Command preflight is the certflow Lambda function that is the Preflight
// state: it checks a domain points at the edge and CAA permits the CA. It only
// wires: see internal/wiring.Preflight.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("preflight", wiring.Preflight) }
