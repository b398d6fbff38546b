// Command notify is the certflow Lambda function that is the Notify state: it
// tells the platform a certificate was issued or renewed. It only wires: see
// internal/wiring.Notify.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("notify", wiring.Notify) }
