package certstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/table"
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
// it (if any) and the bookkeeping of its issuance.
type Certificate struct {
	Domain     string
	SANs       []string
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
	ARICertID string
	RenewAt   time.Time

	FailureCount     int
	FirstFailureAt   time.Time
	LastErrorCode    string
	LastErrorMessage string
	NextAttemptAt    time.Time
	UnpauseURL       string
	QuarantineReason string

	Execution   string // ARN of the execution working on this domain
	RequestedAt time.Time
	UpdatedAt   time.Time
}

// certificateItem is the full certificate item for c.
func certificateItem(c *Certificate) map[string]types.AttributeValue {
	item := table.DomainKey(c.Domain, table.SKCert)
	item[table.AttrDomain] = table.S(c.Domain)
	item[table.AttrSANs] = table.L(c.SANs)
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
	setS(table.AttrARICertID, c.ARICertID)
	setT(table.AttrRenewAt, c.RenewAt)
	if c.Status == StatusActive {
		item[table.AttrShard] = table.S(table.ShardOf(c.Domain))
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
	setT(table.AttrRequestedAt, c.RequestedAt)
	setT(table.AttrUpdatedAt, c.UpdatedAt)
	return item
}

// certificateFromItem reads a certificate item (or the projection of one).
func certificateFromItem(item map[string]types.AttributeValue) (*Certificate, error) {
	r := table.NewReader(item)
	c := &Certificate{
		Domain:     r.S(table.AttrDomain),
		SANs:       r.L(table.AttrSANs),
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
		RequestedAt: r.T(table.AttrRequestedAt),
		UpdatedAt:   r.T(table.AttrUpdatedAt),
	}
	if c.Domain == "" {
		c.Domain = r.Domain()
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

// List returns up to limit certificates in status, ordered by domain, from
// the ByStatus index (no key material, no certificate PEM). cursor is "" for
// the first page or the nextCursor of the previous page; nextCursor is ""
// after the last page. A cursor not issued for this status is ErrBadCursor.
func (s *Store) List(ctx context.Context, status Status, limit int, cursor string) (certs []Certificate, nextCursor string, err error) {
	if !status.Valid() {
		return nil, "", fmt.Errorf("list %s certificates: unknown status", status)
	}
	start, err := decodeCursor(cursor, func(k map[string]string) bool {
		return k[table.AttrStatus] == string(status) && k[table.AttrSK] == table.SKCert && k[table.AttrPK] == table.DomainPK(k[table.AttrDomain])
	}, table.AttrPK, table.AttrSK, table.AttrStatus, table.AttrDomain)
	if err != nil {
		return nil, "", fmt.Errorf("list %s certificates: %w", status, err)
	}
	e := table.NewExpr()
	cond := fmt.Sprintf("%s = %s", e.Name(table.AttrStatus), e.Value(table.S(string(status))))
	items, next, err := s.queryPage(ctx, table.IndexByStatus, e, cond, limit, start)
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

// failureAttrs are the attributes that describe failed attempts; a new
// request or a new certificate clears them.
var failureAttrs = []string{table.AttrFailureCount, table.AttrFirstFailureAt, table.AttrLastErrorCode, table.AttrLastErrorMessage,
	table.AttrNextAttemptAt, table.AttrUnpauseURL, table.AttrQuarantineReason}

// Request records that the platform requests a certificate for domain with
// sans. A new domain is created as pending with generation 1. A quarantined
// or retired domain starts a new generation: status pending, failure fields
// cleared, sans replaced. A pending, active or failed domain is left as it
// is. started reports whether a new generation began, that is whether the
// caller should start an issuance. Writes are conditioned on the version
// read, so of two concurrent requests only one starts the generation.
func (s *Store) Request(ctx context.Context, domain string, sans []string, now time.Time) (cert *Certificate, started bool, err error) {
	for range maxAttempts {
		cur, err := s.GetConsistent(ctx, domain)
		switch {
		case errors.Is(err, ErrNotFound):
			c := &Certificate{Domain: domain, SANs: sans, Status: StatusPending, Version: 1, Generation: 1,
				RequestedAt: now, UpdatedAt: now}
			e := table.NewExpr()
			e.If("attribute_not_exists(%s)", e.Name(table.AttrPK))
			_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
				TableName:                aws.String(s.table),
				Item:                     certificateItem(c),
				ConditionExpression:      e.Condition(),
				ExpressionAttributeNames: e.Names(),
			})
			if _, lost := conditionFailed(err); lost {
				continue
			}
			if err != nil {
				return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
			}
			return c, true, nil
		case err != nil:
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		case cur.Status != StatusQuarantined && cur.Status != StatusRetired:
			return cur, false, nil
		}
		e := table.NewExpr()
		e.Set(table.AttrStatus, table.S(string(StatusPending)))
		e.Set(table.AttrSANs, table.L(sans))
		e.Set(table.AttrRequestedAt, table.T(now))
		e.Set(table.AttrUpdatedAt, table.T(now))
		e.Remove(failureAttrs...)
		e.Remove(table.AttrExecution)
		e.Add(table.AttrGeneration, table.N(1))
		e.Add(table.AttrVersion, table.N(1))
		e.If("%s = %s", e.Name(table.AttrVersion), e.Value(table.N(cur.Version)))
		out, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueAllNew))
		if _, lost := conditionFailed(err); lost {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		c, err := certificateFromItem(out.Attributes)
		if err != nil {
			return nil, false, fmt.Errorf("request certificate %q: %w", domain, err)
		}
		return c, true, nil
	}
	return nil, false, fmt.Errorf("request certificate %q: item kept changing: %w", domain, ErrStale)
}

// SetExecution records the ARN of the execution working on generation of
// domain. It returns ErrStale when the domain has moved to another
// generation and ErrNotFound when it does not exist.
func (s *Store) SetExecution(ctx context.Context, domain string, generation int64, executionARN string) error {
	e := table.NewExpr()
	e.Set(table.AttrExecution, table.S(executionARN))
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_exists(%s)", e.Name(table.AttrPK))
	e.If("%s = %s", e.Name(table.AttrGeneration), e.Value(table.N(generation)))
	_, err := s.client.UpdateItem(ctx, s.updateCert(domain, e, types.ReturnValueNone))
	if old, failed := conditionFailed(err); failed {
		if old == nil {
			return fmt.Errorf("set execution of %q: %w", domain, ErrNotFound)
		}
		return fmt.Errorf("set execution of %q: generation %d is no longer current: %w", domain, generation, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("set execution of %q: %w", domain, err)
	}
	return nil
}

// recordFailureInput builds RecordFailure's update for an item in status
// from: an active certificate stays active and its renewAt moves to an hour
// after the next attempt, anything else becomes failed.
func (s *Store) recordFailureInput(domain string, from Status, d failure.Detail, nextAttemptAt, now time.Time) *dynamodb.UpdateItemInput {
	e := table.NewExpr()
	e.Add(table.AttrFailureCount, table.N(1))
	e.Add(table.AttrVersion, table.N(1))
	e.SetRaw(fmt.Sprintf("%s = if_not_exists(%s, %s)", e.Name(table.AttrFirstFailureAt), e.Name(table.AttrFirstFailureAt), e.Value(table.T(now))))
	e.Set(table.AttrLastErrorCode, table.S(d.Code))
	e.Set(table.AttrLastErrorMessage, table.S(d.Message))
	e.Set(table.AttrUpdatedAt, table.T(now))
	if !nextAttemptAt.IsZero() {
		e.Set(table.AttrNextAttemptAt, table.T(nextAttemptAt))
	}
	if d.UnpauseURL != "" {
		e.Set(table.AttrUnpauseURL, table.S(d.UnpauseURL))
	}
	e.If("attribute_exists(%s)", e.Name(table.AttrPK))
	if from == StatusActive {
		e.If("%s = %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusActive))))
		if !nextAttemptAt.IsZero() {
			e.Set(table.AttrRenewAt, table.T(nextAttemptAt.Add(time.Hour)))
		}
	} else {
		e.Set(table.AttrStatus, table.S(string(StatusFailed)))
		e.If("%s IN (%s, %s)", e.Name(table.AttrStatus), e.Value(table.S(string(StatusPending))), e.Value(table.S(string(StatusFailed))))
	}
	return s.updateCert(domain, e, types.ReturnValueAllNew)
}

// RecordFailure records a failed attempt on domain atomically: failureCount
// is incremented, firstFailureAt set on the first failure, the error code
// and message, nextAttemptAt (unless zero) and the unpause link (when d has
// one) stored. A pending or failed domain becomes failed; an active one
// stays active and keeps being served, and its renewAt moves to an hour
// after nextAttemptAt so the sweeper does not start a second renewal
// meanwhile. It returns the failure count and the time of the first failure
// since the last success, or ErrNotFound, ErrRetired or ErrQuarantined.
func (s *Store) RecordFailure(ctx context.Context, domain string, d failure.Detail, nextAttemptAt, now time.Time) (count int, firstFailureAt time.Time, err error) {
	from := StatusFailed
	for range maxAttempts {
		out, err := s.client.UpdateItem(ctx, s.recordFailureInput(domain, from, d, nextAttemptAt, now))
		if old, failed := conditionFailed(err); failed {
			switch st := statusOf(old); {
			case old == nil:
				return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, ErrNotFound)
			case st == StatusRetired:
				return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, ErrRetired)
			case st == StatusQuarantined:
				return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, ErrQuarantined)
			case st == StatusActive:
				from = StatusActive
			default:
				from = StatusFailed
			}
			continue
		}
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, err)
		}
		c, err := certificateFromItem(out.Attributes)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("record failure of %q: %w", domain, err)
		}
		return c.FailureCount, c.FirstFailureAt, nil
	}
	return 0, time.Time{}, fmt.Errorf("record failure of %q: status kept changing: %w", domain, ErrStale)
}

// Quarantine stops all attempts for domain until the platform requests it
// again: status quarantined with the reason code, message and unpause link,
// the domain leaves the renewal and expiry indexes, and its renewal timer is
// deleted, all in one transaction. A certificate it holds is still served.
// It returns ErrNotFound or ErrRetired.
func (s *Store) Quarantine(ctx context.Context, domain, reasonCode, message, unpauseURL string) error {
	e := table.NewExpr()
	e.Set(table.AttrStatus, table.S(string(StatusQuarantined)))
	e.Set(table.AttrQuarantineReason, table.S(reasonCode))
	e.Set(table.AttrLastErrorCode, table.S(reasonCode))
	e.Set(table.AttrLastErrorMessage, table.S(message))
	if unpauseURL != "" {
		e.Set(table.AttrUnpauseURL, table.S(unpauseURL))
	}
	e.Set(table.AttrUpdatedAt, table.T(s.now()))
	e.Remove(table.AttrShard, table.AttrRenewAt, table.AttrNextAttemptAt)
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_exists(%s)", e.Name(table.AttrPK))
	e.If("%s <> %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusRetired))))
	input := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.txUpdateCert(domain, e),
		s.deleteTimer(domain),
	}}
	for attempt := 1; ; attempt++ {
		_, err := s.client.TransactWriteItems(ctx, input)
		if err == nil {
			return nil
		}
		old, condFailed, conflict := transactionFailure(err, 0)
		switch {
		case condFailed && old == nil:
			return fmt.Errorf("quarantine %q: %w", domain, ErrNotFound)
		case condFailed:
			return fmt.Errorf("quarantine %q: %w", domain, ErrRetired)
		case !conflict || attempt == maxAttempts:
			return fmt.Errorf("quarantine %q: %w", domain, err)
		}
		if err := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return fmt.Errorf("quarantine %q: %w", domain, err)
		}
	}
}

// Retire marks domain retired: the sealed private key is removed, the
// domain leaves the renewal and expiry indexes, its timer and its SAN
// aliases are deleted. It returns the item as it was before, so the caller
// can revoke the certificate and stop the running execution. Retiring a
// retired domain only finishes the alias clean-up and returns the item.
// It returns ErrNotFound when the domain does not exist.
func (s *Store) Retire(ctx context.Context, domain string) (*Certificate, error) {
	for range maxAttempts {
		prev, err := s.GetConsistent(ctx, domain)
		if err != nil {
			return nil, fmt.Errorf("retire %q: %w", domain, err)
		}
		if prev.Status != StatusRetired {
			e := table.NewExpr()
			e.Set(table.AttrStatus, table.S(string(StatusRetired)))
			e.Set(table.AttrUpdatedAt, table.T(s.now()))
			e.Remove(table.AttrKeyWrapped, table.AttrKeyCiphertext, table.AttrShard, table.AttrRenewAt, table.AttrNextAttemptAt, table.AttrExecution)
			e.Add(table.AttrVersion, table.N(1))
			e.If("%s = %s", e.Name(table.AttrVersion), e.Value(table.N(prev.Version)))
			_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				s.txUpdateCert(domain, e),
				s.deleteTimer(domain),
			}})
			if _, condFailed, conflict := transactionFailure(err, 0); condFailed || conflict {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("retire %q: %w", domain, err)
			}
		}
		if err := s.deleteAliases(ctx, domain, prev.SANs); err != nil {
			return nil, fmt.Errorf("retire %q: %w", domain, err)
		}
		return prev, nil
	}
	return nil, fmt.Errorf("retire %q: item kept changing: %w", domain, ErrStale)
}

// maxTransactItems is DynamoDB's limit of actions in one transaction.
const maxTransactItems = 100

// Issued is a newly issued certificate to store.
type Issued struct {
	Domain    string
	SANs      []string // every name the certificate covers, Domain included
	CertPEM   string   // leaf then chain
	Key       SealedKey
	KeyType   string
	NotBefore time.Time
	NotAfter  time.Time
	Serial    string // hex; stored lower case
	Issuer    string
	ARICertID string
	RenewAt   time.Time
}

func (in Issued) validate() error {
	switch {
	case in.Domain == "":
		return errors.New("domain is empty")
	case in.CertPEM == "":
		return errors.New("certificate PEM is empty")
	case strings.Contains(in.CertPEM, "PRIVATE KEY"):
		return errors.New("certificate PEM holds a private key")
	case len(in.Key.Wrapped) == 0 || len(in.Key.Ciphertext) == 0:
		return errors.New("sealed key is empty")
	case in.Serial == "":
		return errors.New("serial is empty")
	case in.NotBefore.IsZero() || in.NotAfter.IsZero() || in.RenewAt.IsZero():
		return errors.New("notBefore, notAfter and renewAt are required")
	}
	return nil
}

// aliases returns the SANs of in that need an alias item: all but the
// primary name, without duplicates.
func (in Issued) aliases() []string {
	var out []string
	for _, san := range in.SANs {
		if san != in.Domain && !slices.Contains(out, san) {
			out = append(out, san)
		}
	}
	return out
}

// saveIssuedInput builds the transaction of SaveIssued: the certificate
// update (action 0, conditioned), the timer and the alias items.
func (s *Store) saveIssuedInput(in Issued, now time.Time) (*dynamodb.TransactWriteItemsInput, error) {
	aliases := in.aliases()
	if 2+len(aliases) > maxTransactItems {
		return nil, fmt.Errorf("%d SANs exceed the %d items of a transaction", len(in.SANs), maxTransactItems)
	}
	serial := strings.ToLower(in.Serial)
	sans := in.SANs
	if !slices.Contains(sans, in.Domain) {
		sans = append([]string{in.Domain}, sans...)
	}

	e := table.NewExpr()
	e.Set(table.AttrDomain, table.S(in.Domain))
	e.Set(table.AttrSANs, table.L(sans))
	e.Set(table.AttrCertPEM, table.S(in.CertPEM))
	e.Set(table.AttrKeyWrapped, table.B(in.Key.Wrapped))
	e.Set(table.AttrKeyCiphertext, table.B(in.Key.Ciphertext))
	e.Set(table.AttrKeyType, table.S(in.KeyType))
	nb := e.Value(table.T(in.NotBefore))
	e.SetRaw(e.Name(table.AttrNotBefore) + " = " + nb)
	e.Set(table.AttrNotAfter, table.T(in.NotAfter))
	sv := e.Value(table.S(serial))
	e.SetRaw(e.Name(table.AttrSerial) + " = " + sv)
	e.Set(table.AttrIssuer, table.S(in.Issuer))
	if in.ARICertID != "" {
		e.Set(table.AttrARICertID, table.S(in.ARICertID))
	} else {
		e.Remove(table.AttrARICertID)
	}
	e.Set(table.AttrRenewAt, table.T(in.RenewAt))
	e.Set(table.AttrStatus, table.S(string(StatusActive)))
	e.Set(table.AttrShard, table.S(table.ShardOf(in.Domain)))
	e.Set(table.AttrUpdatedAt, table.T(now))
	e.Remove(table.AttrFailureCount, table.AttrFirstFailureAt, table.AttrLastErrorCode, table.AttrLastErrorMessage,
		table.AttrNextAttemptAt, table.AttrUnpauseURL, table.AttrQuarantineReason)
	e.Add(table.AttrVersion, table.N(1))
	e.If("attribute_exists(%s)", e.Name(table.AttrPK))
	e.If("%s <> %s", e.Name(table.AttrStatus), e.Value(table.S(string(StatusRetired))))
	e.If("attribute_not_exists(%s) OR %s <= %s", e.Name(table.AttrNotBefore), e.Name(table.AttrNotBefore), nb)
	e.If("attribute_not_exists(%s) OR %s <> %s", e.Name(table.AttrSerial), e.Name(table.AttrSerial), sv)

	items := []types.TransactWriteItem{
		s.txUpdateCert(in.Domain, e),
		s.putTimer(Timer{Domain: in.Domain, Serial: serial, ARICertID: in.ARICertID, RenewAt: in.RenewAt}),
	}
	for _, san := range aliases {
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.table),
			Item:      aliasItem(san, in.Domain),
		}})
	}
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, nil
}

// SaveIssued stores a newly issued certificate in one transaction: the
// certificate item becomes active with the new certificate (failure fields
// cleared, version incremented), the renewal timer is replaced by one that
// expires at RenewAt, and every SAN gets an alias item.
//
// An older certificate never replaces a newer one: storing a certificate
// whose notBefore is before the stored one's returns ErrStale and changes
// nothing. Storing the same serial again is a no-op that returns nil, so the
// issue step can be retried. A retired domain returns ErrRetired, a domain
// never requested ErrNotFound.
func (s *Store) SaveIssued(ctx context.Context, in Issued) error {
	if err := in.validate(); err != nil {
		return fmt.Errorf("store certificate %q: %w", in.Domain, err)
	}
	input, err := s.saveIssuedInput(in, s.now())
	if err != nil {
		return fmt.Errorf("store certificate %q: %w", in.Domain, err)
	}
	for attempt := 1; ; attempt++ {
		_, err := s.client.TransactWriteItems(ctx, input)
		if err == nil {
			return nil
		}
		old, condFailed, conflict := transactionFailure(err, 0)
		if condFailed {
			return s.classifySaveConflict(in, old)
		}
		if !conflict || attempt == maxAttempts {
			return fmt.Errorf("store certificate %q: %w", in.Domain, err)
		}
		if err := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return fmt.Errorf("store certificate %q: %w", in.Domain, err)
		}
	}
}

// classifySaveConflict turns the stored item that failed SaveIssued's
// condition into the documented result.
func (s *Store) classifySaveConflict(in Issued, old map[string]types.AttributeValue) error {
	if old == nil {
		return fmt.Errorf("store certificate %q: %w", in.Domain, ErrNotFound)
	}
	r := table.NewReader(old)
	switch {
	case Status(r.S(table.AttrStatus)) == StatusRetired:
		return fmt.Errorf("store certificate %q: %w", in.Domain, ErrRetired)
	case r.S(table.AttrSerial) == strings.ToLower(in.Serial):
		return nil
	default:
		return fmt.Errorf("store certificate %q: serial %s (notBefore %s) is older than stored %s (notBefore %s): %w",
			in.Domain, strings.ToLower(in.Serial), table.FormatTime(in.NotBefore), r.S(table.AttrSerial), r.S(table.AttrNotBefore), ErrStale)
	}
}
