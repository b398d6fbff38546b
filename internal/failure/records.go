package failure

// Codes of a validation record the customer was asked to publish and has
// not (or has wrongly): evidence about the domain, found by preflight
// before any order.
const (
	// CodeDelegationMissing: the "_acme-challenge" CNAME delegating DNS-01
	// to the platform is missing or points elsewhere.
	CodeDelegationMissing = "delegation_missing"
	// CodePersistRecordMissing: no DNS-PERSIST-01 record for the CA.
	CodePersistRecordMissing = "persist_record_missing"
	// CodePersistRecordWrongAccount: a DNS-PERSIST-01 record for the CA
	// names another ACME account.
	CodePersistRecordWrongAccount = "persist_record_wrong_account"
)

// ValidationRecordError means a DNS record the domain's validation relies
// on (the delegation CNAME, the DNS-PERSIST-01 TXT) is missing or wrong:
// the domain is not ready, and no order is placed. Code is one of the
// codes above.
type ValidationRecordError struct {
	Code    string
	Message string
	Err     error
}

func (e *ValidationRecordError) Error() string { return e.Code + ": " + e.Message }
func (e *ValidationRecordError) Unwrap() error { return e.Err }

// Detail implements Failure.
func (e *ValidationRecordError) Detail() Detail {
	return Detail{Code: e.Code, Message: e.Message}
}
