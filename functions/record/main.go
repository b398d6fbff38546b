// Command record is the certflow Lambda function that is the RecordFailure,
// RecordRateLimit, RecordPermanentFailure and Quarantine states: it records
// failures and quarantines and tells the platform. It only wires: see
// internal/wiring.Record.
package main

import "github.com/certflow/certflow/internal/wiring"

func main() { wiring.Run("record", wiring.Record) }
