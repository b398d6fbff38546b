// Command sweeper is the certflow Lambda function that starts overdue
// renewals, re-asks ARI and publishes the minimum days to expiry. It only
// wires: see internal/wiring.Sweeper.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("sweeper", wiring.Sweeper) }
