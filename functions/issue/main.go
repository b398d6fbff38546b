// Command issue is the certflow Lambda function that obtains a certificate
// over ACME and stores it with its private key sealed; it returns metadata
// only. It only wires: see internal/function.Issue.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("issue", function.Issue) }
