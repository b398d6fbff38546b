// Command delivery is the certflow Lambda function that delivers the
// certificate for a TLS handshake's SNI name to proxies. It only wires: see
// internal/wiring.Delivery.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("delivery", wiring.Delivery) }
