// Command renewal-trigger is the certflow Lambda function that starts a renewal when DynamoDB TTL deletes a renewal timer.
// It only wires: see internal/function.RenewalTrigger.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("renewal-trigger", function.RenewalTrigger) }
