// Command order-budget is the certflow Lambda function that takes a token from the account-wide new-order budget.
// It only wires: see internal/function.OrderBudget.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("order-budget", function.OrderBudget) }
