// Command renewal-trigger is the certflow Lambda function that starts a
// renewal when DynamoDB TTL deletes a renewal timer. It only wires: see
// internal/wiring.RenewalTrigger.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("renewal-trigger", wiring.RenewalTrigger) }
