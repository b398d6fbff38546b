// Command delivery is the certflow Lambda function that delivers the certificate for a TLS handshake's SNI name to proxies.
// It only wires: see internal/function.Delivery.
package main

import "github.com/certflow/certflow/internal/function"

func main() { function.Run("delivery", function.Delivery) }
