// Command issue is the certflow Lambda function that is the Issue state: it
// obtains a certificate over ACME and stores it with its private key sealed,
// and returns metadata only. It only wires: see internal/wiring.Issue.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("issue", wiring.Issue) }
