// Command api is the certflow Lambda function that serves the certificates API: request, read, list and retire domains.
// It only wires: see internal/function.API.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("api", function.API) }
