// Command api is the certflow Lambda function that serves the certificates
// API: request, read, list and retire domains. It only wires: see
// internal/wiring.API.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("api", wiring.API) }
