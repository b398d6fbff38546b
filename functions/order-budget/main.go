// Command order-budget is the certflow Lambda function that is the
// TakeOrderToken state: a token from the account-wide new-order budget. It
// only wires: see internal/wiring.OrderBudget.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("order-budget", wiring.OrderBudget) }
