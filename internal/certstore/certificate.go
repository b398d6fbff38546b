package certstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/table"
	"github.com/certflow/certflow/internal/validation"
)

// Status is the lifecycle state of a domain's certificate.
type Status string

// The statuses a certificate item moves through.
const (
	StatusPending     Status = "pending"     // requested, first issuance in progress
	StatusActive      Status = "active"      // holds a served certificate
	StatusFailed      Status = "failed"      // the last attempt failed; another is scheduled
	StatusQuarantined Status = "quarantined" // no more attempts until requested again
	StatusRetired     Status = "retired"     // deleted by the platform
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusActive, StatusFailed, StatusQuarantined, StatusRetired:
		return true
	}
	return false
}

// SealedKey is a private key sealed by the envelope package: a KMS-wrapped
// data key and the AES-256-GCM ciphertext (nonce first).
type SealedKey struct {
	Wrapped    []byte
	Ciphertext []byte
}

// Certificate is the current state of one domain: the certificate served for
// it (if any) and the bookkeeping of its issuance. Its writes are in
// certificate_request.go (the platform's), certificate_execution.go (the
// owning execution's), certificate_issued.go (a new certificate) and
// certificate_due.go (the indexes over it).
type Certificate struct {
	Domain string
	SANs   []string
	// Tenant holds the domain: the IAM principal that requested it, or
	// the tenant an operator requested it for. Only the tenant reads,
	// lists, retires or requests it again.
	Tenant     string
	Status     Status
	Version    int64 // incremented by every write
	Generation int64 // incremented each time the platform (re-)requests the domain

	CertPEM   string    // leaf then chain
	Key       SealedKey // never plaintext
	KeyType   string
	NotBefore time.Time
	NotAfter  time.Time
	Serial    string // lower-case hex
	Issuer    string
	// CA is which of the deployment's CAs issued the certificate
	// (flow.CAPrimary or flow.CAFallback; empty for certificates stored
	// before it was recorded, which the primary issued).
	CA        string
	ARICertID string
	RenewAt   time.Time

	FailureCount     int
	FirstFailureAt   time.Time
	LastErrorCode    string
	LastErrorMessage string
	NextAttemptAt    time.Time
	UnpauseURL       string
	QuarantineReason string

	// Execution is the name of the execution that owns the domain: the
	// only one whose writes are accepted. Empty when none does (an active
	// certificate between renewals, a quarantined or retired domain).
	Execution string
	// Run numbers the executions of this generation (issuance) or this
	// certificate (renewal); it is part of their names.
	Run int64
	// DueAt is when the domain next needs attention (the ByDue index):
	// the renewal time of an idle certificate, else the time by which the
	// owning execution is expected to have acted, plus the store's grace.
	DueAt time.Time
	// Waits counts the waits of the current execution (backoffs, rate
	// limits, outages), OutageCount the consecutive failures on the CA's
	// or certflow's side.
	Waits       int
	OutageCount int
	// SpentSlot is the seq of the new-order budget slot an order was
	// placed with.
	SpentSlot int64

	// OwnershipToken is the value of the TXT records that prove the
	// tenant owns the domain's names (validation.Ownership), set when the
	// request asked for the proof; OwnershipVerifiedAt is when preflight
	// found them, zero until then. No order is placed for a domain with a
	// token that is not verified.
	OwnershipToken      string
	OwnershipVerifiedAt time.Time

	// Validation is how the domain proves control ("" = HTTP-01),
	// Records the DNS records its customer was asked to publish for it
	// (the DNS-01 delegation CNAME, the DNS-PERSIST-01 TXT), Profile the
	// ACME profile asked for ("" = the deployment's default); all as the
	// generation's request set them.
	Validation validation.Method
	Records    []validation.Record
	Profile    string

	RequestedAt time.Time
	UpdatedAt   time.Time
}

// Working reports whether certflow still has work on the domain: it is in
// the ByDue index.
func (s Status) Working() bool {
	return s == StatusPending || s == StatusFailed || s == StatusActive
}

// certificateItem is the full certificate item for c.
func certificateItem(c *Certificate) map[string]types.AttributeValue {
	item := table.DomainKey(c.Domain, table.SKCert)
	item[table.AttrDomain] = table.S(c.Domain)
	item[table.AttrSANs] = table.L(c.SANs)
	if c.Tenant != "" {
		item[table.AttrTenant] = table.S(c.Tenant)
	}
	if p := table.ParentOf(c.Domain); p != "" {
		item[table.AttrParent] = table.S(p)
	}
	item[table.AttrStatus] = table.S(string(c.Status))
	item[table.AttrVersion] = table.N(c.Version)
	item[table.AttrGeneration] = table.N(c.Generation)
	setS := func(name, v string) {
		if v != "" {
			item[name] = table.S(v)
		}
	}
	setT := func(name string, t time.Time) {
		if !t.IsZero() {
			item[name] = table.T(t)
		}
	}
	setS(table.AttrCertPEM, c.CertPEM)
	if len(c.Key.Wrapped) > 0 {
		item[table.AttrKeyWrapped] = table.B(c.Key.Wrapped)
		item[table.AttrKeyCiphertext] = table.B(c.Key.Ciphertext)
	}
	setS(table.AttrKeyType, c.KeyType)
	setT(table.AttrNotBefore, c.NotBefore)
	setT(table.AttrNotAfter, c.NotAfter)
	setS(table.AttrSerial, c.Serial)
	setS(table.AttrIssuer, c.Issuer)
	setS(table.AttrCA, c.CA)
	setS(table.AttrARICertID, c.ARICertID)
	setT(table.AttrRenewAt, c.RenewAt)
	if c.Status.Working() {
		item[table.AttrShard] = table.S(table.ShardOf(c.Domain))
	}
	setT(table.AttrDueAt, c.DueAt)
	if c.Run != 0 {
		item[table.AttrRun] = table.N(c.Run)
	}
	if c.FailureCount > 0 {
		item[table.AttrFailureCount] = table.N(int64(c.FailureCount))
	}
	setT(table.AttrFirstFailureAt, c.FirstFailureAt)
	setS(table.AttrLastErrorCode, c.LastErrorCode)
	setS(table.AttrLastErrorMessage, c.LastErrorMessage)
	setT(table.AttrNextAttemptAt, c.NextAttemptAt)
	setS(table.AttrUnpauseURL, c.UnpauseURL)
	setS(table.AttrQuarantineReason, c.QuarantineReason)
	setS(table.AttrExecution, c.Execution)
	setS(table.AttrOwnershipToken, c.OwnershipToken)
	setT(table.AttrOwnershipVerifiedAt, c.OwnershipVerifiedAt)
	setS(table.AttrValidation, string(c.Validation))
	if len(c.Records) > 0 {
		item[table.AttrRecords] = recordsValue(c.Records)
	}
	setS(table.AttrProfile, c.Profile)
	setT(table.AttrRequestedAt, c.RequestedAt)
	setT(table.AttrUpdatedAt, c.UpdatedAt)
	return item
}

// recordsValue is records as the table keeps them: a list of their
// presentation forms.
func recordsValue(records []validation.Record) types.AttributeValue {
	ss := make([]string, len(records))
	for i, r := range records {
		ss[i] = r.String()
	}
	return table.L(ss)
}

// certificateFromItem reads a certificate item (or the projection of one).
func certificateFromItem(item map[string]types.AttributeValue) (*Certificate, error) {
	r := table.NewReader(item)
	c := &Certificate{
		Domain:     r.S(table.AttrDomain),
		SANs:       r.L(table.AttrSANs),
		Tenant:     r.S(table.AttrTenant),
		Status:     Status(r.S(table.AttrStatus)),
		Version:    r.N(table.AttrVersion),
		Generation: r.N(table.AttrGeneration),
		CertPEM:    r.S(table.AttrCertPEM),
		Key:        SealedKey{Wrapped: r.B(table.AttrKeyWrapped), Ciphertext: r.B(table.AttrKeyCiphertext)},
		KeyType:    r.S(table.AttrKeyType),
		NotBefore:  r.T(table.AttrNotBefore),
		NotAfter:   r.T(table.AttrNotAfter),
		Serial:     r.S(table.AttrSerial),
		Issuer:     r.S(table.AttrIssuer),
		CA:         r.S(table.AttrCA),
		ARICertID:  r.S(table.AttrARICertID),
		RenewAt:    r.T(table.AttrRenewAt),

		FailureCount:     int(r.N(table.AttrFailureCount)),
		FirstFailureAt:   r.T(table.AttrFirstFailureAt),
		LastErrorCode:    r.S(table.AttrLastErrorCode),
		LastErrorMessage: r.S(table.AttrLastErrorMessage),
		NextAttemptAt:    r.T(table.AttrNextAttemptAt),
		UnpauseURL:       r.S(table.AttrUnpauseURL),
		QuarantineReason: r.S(table.AttrQuarantineReason),

		Execution:   r.S(table.AttrExecution),
		Run:         r.N(table.AttrRun),
		DueAt:       r.T(table.AttrDueAt),
		Waits:       int(r.N(table.AttrWaits)),
		OutageCount: int(r.N(table.AttrOutageCount)),
		SpentSlot:   r.N(table.AttrSpentSlot),

		OwnershipToken:      r.S(table.AttrOwnershipToken),
		OwnershipVerifiedAt: r.T(table.AttrOwnershipVerifiedAt),

		Validation: validation.Method(r.S(table.AttrValidation)),
		Profile:    r.S(table.AttrProfile),

		RequestedAt: r.T(table.AttrRequestedAt),
		UpdatedAt:   r.T(table.AttrUpdatedAt),
	}
	if c.Domain == "" {
		c.Domain = r.Domain()
	}
	for _, rec := range r.L(table.AttrRecords) {
		parsed, err := validation.ParseRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("read certificate item %q: %w", c.Domain, err)
		}
		c.Records = append(c.Records, parsed)
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("read certificate item %q: %w", c.Domain, r.Err())
	}
	if !c.Status.Valid() {
		return nil, fmt.Errorf("read certificate item %q: unknown status %q", c.Domain, c.Status)
	}
	return c, nil
}

// Get returns the certificate item of domain with an eventually consistent
// read, or ErrNotFound.
func (s *Store) Get(ctx context.Context, domain string) (*Certificate, error) {
	return s.get(ctx, domain, false)
}

// GetConsistent is Get with a strongly consistent read, for decisions that
// must see the latest write.
func (s *Store) GetConsistent(ctx context.Context, domain string) (*Certificate, error) {
	return s.get(ctx, domain, true)
}

func (s *Store) get(ctx context.Context, domain string, consistent bool) (*Certificate, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            table.DomainKey(domain, table.SKCert),
		ConsistentRead: aws.Bool(consistent),
	})
	if err != nil {
		return nil, fmt.Errorf("get certificate %q: %w", domain, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("get certificate %q: %w", domain, ErrNotFound)
	}
	return certificateFromItem(out.Item)
}

// List returns up to limit certificates of tenant in status, from the
// ByTenant index (no key material, no certificate PEM), in no particular
// order. cursor is "" for the first page or the nextCursor of the previous
// page; nextCursor is "" after the last page. A cursor not issued for this
// tenant and status is ErrBadCursor.
func (s *Store) List(ctx context.Context, tenant string, status Status, limit int, cursor string) (certs []Certificate, nextCursor string, err error) {
	if !status.Valid() {
		return nil, "", fmt.Errorf("list %s certificates: unknown status", status)
	}
	if tenant == "" {
		return nil, "", fmt.Errorf("list %s certificates: no tenant", status)
	}
	start, err := decodeCursor(cursor, func(k map[string]string) bool {
		return k[table.AttrTenant] == tenant && k[table.AttrStatus] == string(status) && k[table.AttrSK] == table.SKCert &&
			strings.HasPrefix(k[table.AttrPK], table.DomainPrefix)
	}, table.AttrPK, table.AttrSK, table.AttrTenant, table.AttrStatus)
	if err != nil {
		return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
	}
	e := table.NewExpr()
	cond := fmt.Sprintf("%s = %s AND %s = %s", e.Name(table.AttrTenant), e.Value(table.S(tenant)), e.Name(table.AttrStatus), e.Value(table.S(string(status))))
	items, next, err := s.queryPage(ctx, table.IndexByTenant, e, cond, limit, start)
	if err != nil {
		return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
	}
	certs = make([]Certificate, 0, len(items))
	for _, item := range items {
		c, err := certificateFromItem(item)
		if err != nil {
			return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
		}
		certs = append(certs, *c)
	}
	return certs, next, nil
}
