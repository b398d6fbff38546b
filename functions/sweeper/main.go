// Command sweeper is the certflow Lambda function that starts overdue renewals, re-asks ARI and publishes the minimum days to expiry.
// It only wires: see internal/function.Sweeper.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("sweeper", function.Sweeper) }
