package certstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item attribute names, exactly as docs/ARCHITECTURE.md lists them.
const (
	attrPK               = "pk"
	attrSK               = "sk"
	attrExpiresAt        = "expiresAt"
	attrDomain           = "domain"
	attrTarget           = "target"
	attrSANs             = "sans"
	attrStatus           = "status"
	attrVersion          = "version"
	attrGeneration       = "generation"
	attrCertPEM          = "certPEM"
	attrKeyWrapped       = "keyWrapped"
	attrKeyCiphertext    = "keyCiphertext"
	attrKeyType          = "keyType"
	attrNotBefore        = "notBefore"
	attrNotAfter         = "notAfter"
	attrSerial           = "serial"
	attrIssuer           = "issuer"
	attrARICertID        = "ariCertID"
	attrRenewAt          = "renewAt"
	attrShard            = "shard"
	attrFailureCount     = "failureCount"
	attrFirstFailureAt   = "firstFailureAt"
	attrLastErrorCode    = "lastErrorCode"
	attrLastErrorMessage = "lastErrorMessage"
	attrNextAttemptAt    = "nextAttemptAt"
	attrUnpauseURL       = "unpauseURL"
	attrQuarantineReason = "quarantineReason"
	attrExecution        = "execution"
	attrRequestedAt      = "requestedAt"
	attrUpdatedAt        = "updatedAt"
)

// Sort keys of the item kinds this package owns.
const (
	skCert  = "CERT"
	skAlias = "ALIAS"
	skTimer = "TIMER"
)

// Index names of the table.
const (
	indexByStatus  = "ByStatus"
	indexByRenewal = "ByRenewal"
	indexByExpiry  = "ByExpiry"
)

const domainPrefix = "DOMAIN#"

// timeLayout is RFC 3339 in UTC with second precision: sortable as a string.
const timeLayout = "2006-01-02T15:04:05Z"

func domainPK(domain string) string { return domainPrefix + domain }

func key(domain, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: domainPK(domain)},
		attrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

// FormatTime formats t the way the table stores times.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

func avS(s string) types.AttributeValue    { return &types.AttributeValueMemberS{Value: s} }
func avT(t time.Time) types.AttributeValue { return avS(FormatTime(t)) }
func avN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func avB(b []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: b} }
func avL(ss []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(ss))
	for i, s := range ss {
		l[i] = avS(s)
	}
	return &types.AttributeValueMemberL{Value: l}
}

// itemReader reads typed attributes out of an item, remembering the first
// malformed one.
type itemReader struct {
	item map[string]types.AttributeValue
	err  error
}

func (r *itemReader) fail(name, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("attribute %s is not %s", name, want)
	}
}

// attr returns attribute name as the attribute value type T: absent is
// (zero, false); another type is recorded as a failure (want says what it
// should have been).
func attr[T types.AttributeValue](r *itemReader, name, want string) (T, bool) {
	var zero T
	av, ok := r.item[name]
	if !ok {
		return zero, false
	}
	v, ok := av.(T)
	if !ok {
		r.fail(name, want)
		return zero, false
	}
	return v, true
}

func (r *itemReader) s(name string) string {
	v, ok := attr[*types.AttributeValueMemberS](r, name, "a string")
	if !ok {
		return ""
	}
	return v.Value
}

func (r *itemReader) n(name string) int64 {
	v, ok := attr[*types.AttributeValueMemberN](r, name, "a number")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		r.fail(name, "an integer")
	}
	return n
}

func (r *itemReader) b(name string) []byte {
	v, ok := attr[*types.AttributeValueMemberB](r, name, "binary")
	if !ok {
		return nil
	}
	return v.Value
}

func (r *itemReader) t(name string) time.Time {
	s := r.s(name)
	if s == "" {
		return time.Time{}
	}
	t, err := parseTime(s)
	if err != nil {
		r.fail(name, "an RFC 3339 UTC time")
	}
	return t
}

func (r *itemReader) l(name string) []string {
	v, ok := attr[*types.AttributeValueMemberL](r, name, "a list")
	if !ok {
		return nil
	}
	var out []string
	for _, e := range v.Value {
		s, ok := e.(*types.AttributeValueMemberS)
		if !ok {
			r.fail(name, "a list of strings")
			return nil
		}
		out = append(out, s.Value)
	}
	return out
}

// domainFromKey returns the name in a DOMAIN#<name> partition key.
func (r *itemReader) domainFromKey() string {
	name, ok := strings.CutPrefix(r.s(attrPK), domainPrefix)
	if !ok {
		r.fail(attrPK, "a DOMAIN# key")
	}
	return name
}

// certificateItem is the full certificate item for c.
func certificateItem(c *Certificate) map[string]types.AttributeValue {
	item := key(c.Domain, skCert)
	item[attrDomain] = avS(c.Domain)
	item[attrSANs] = avL(c.SANs)
	item[attrStatus] = avS(string(c.Status))
	item[attrVersion] = avN(c.Version)
	item[attrGeneration] = avN(c.Generation)
	setS := func(name, v string) {
		if v != "" {
			item[name] = avS(v)
		}
	}
	setT := func(name string, t time.Time) {
		if !t.IsZero() {
			item[name] = avT(t)
		}
	}
	setS(attrCertPEM, c.CertPEM)
	if len(c.Key.Wrapped) > 0 {
		item[attrKeyWrapped] = avB(c.Key.Wrapped)
		item[attrKeyCiphertext] = avB(c.Key.Ciphertext)
	}
	setS(attrKeyType, c.KeyType)
	setT(attrNotBefore, c.NotBefore)
	setT(attrNotAfter, c.NotAfter)
	setS(attrSerial, c.Serial)
	setS(attrIssuer, c.Issuer)
	setS(attrARICertID, c.ARICertID)
	setT(attrRenewAt, c.RenewAt)
	if c.Status == StatusActive {
		item[attrShard] = avS(ShardOf(c.Domain))
	}
	if c.FailureCount > 0 {
		item[attrFailureCount] = avN(int64(c.FailureCount))
	}
	setT(attrFirstFailureAt, c.FirstFailureAt)
	setS(attrLastErrorCode, c.LastErrorCode)
	setS(attrLastErrorMessage, c.LastErrorMessage)
	setT(attrNextAttemptAt, c.NextAttemptAt)
	setS(attrUnpauseURL, c.UnpauseURL)
	setS(attrQuarantineReason, c.QuarantineReason)
	setS(attrExecution, c.Execution)
	setT(attrRequestedAt, c.RequestedAt)
	setT(attrUpdatedAt, c.UpdatedAt)
	return item
}

// certificateFromItem reads a certificate item (or the projection of one).
func certificateFromItem(item map[string]types.AttributeValue) (*Certificate, error) {
	r := &itemReader{item: item}
	c := &Certificate{
		Domain:     r.s(attrDomain),
		SANs:       r.l(attrSANs),
		Status:     Status(r.s(attrStatus)),
		Version:    r.n(attrVersion),
		Generation: r.n(attrGeneration),
		CertPEM:    r.s(attrCertPEM),
		Key:        SealedKey{Wrapped: r.b(attrKeyWrapped), Ciphertext: r.b(attrKeyCiphertext)},
		KeyType:    r.s(attrKeyType),
		NotBefore:  r.t(attrNotBefore),
		NotAfter:   r.t(attrNotAfter),
		Serial:     r.s(attrSerial),
		Issuer:     r.s(attrIssuer),
		ARICertID:  r.s(attrARICertID),
		RenewAt:    r.t(attrRenewAt),

		FailureCount:     int(r.n(attrFailureCount)),
		FirstFailureAt:   r.t(attrFirstFailureAt),
		LastErrorCode:    r.s(attrLastErrorCode),
		LastErrorMessage: r.s(attrLastErrorMessage),
		NextAttemptAt:    r.t(attrNextAttemptAt),
		UnpauseURL:       r.s(attrUnpauseURL),
		QuarantineReason: r.s(attrQuarantineReason),

		Execution:   r.s(attrExecution),
		RequestedAt: r.t(attrRequestedAt),
		UpdatedAt:   r.t(attrUpdatedAt),
	}
	if c.Domain == "" {
		c.Domain = r.domainFromKey()
	}
	if r.err != nil {
		return nil, fmt.Errorf("read certificate item %q: %w", c.Domain, r.err)
	}
	if !c.Status.Valid() {
		return nil, fmt.Errorf("read certificate item %q: unknown status %q", c.Domain, c.Status)
	}
	return c, nil
}

// timerItem is the renewal timer item; its TTL is the renewal time.
func timerItem(t Timer) map[string]types.AttributeValue {
	item := key(t.Domain, skTimer)
	item[attrDomain] = avS(t.Domain)
	item[attrSerial] = avS(t.Serial)
	if t.ARICertID != "" {
		item[attrARICertID] = avS(t.ARICertID)
	}
	item[attrRenewAt] = avT(t.RenewAt)
	item[attrExpiresAt] = avN(t.RenewAt.Unix())
	return item
}

// TimerFromItem reads a timer item, for example the old image of a stream
// record.
func TimerFromItem(item map[string]types.AttributeValue) (Timer, error) {
	r := &itemReader{item: item}
	t := Timer{
		Domain:    r.s(attrDomain),
		Serial:    r.s(attrSerial),
		ARICertID: r.s(attrARICertID),
		RenewAt:   r.t(attrRenewAt),
	}
	if sk := r.s(attrSK); sk != skTimer {
		return Timer{}, fmt.Errorf("read timer item: sort key %q is not %s", sk, skTimer)
	}
	if t.Domain == "" {
		t.Domain = r.domainFromKey()
	}
	if r.err != nil {
		return Timer{}, fmt.Errorf("read timer item %q: %w", t.Domain, r.err)
	}
	return t, nil
}

// aliasItem points a SAN of primary at primary's certificate item. target is
// the name the alias answers for.
func aliasItem(san, primary string) map[string]types.AttributeValue {
	item := key(san, skAlias)
	item[attrDomain] = avS(primary)
	item[attrTarget] = avS(san)
	return item
}
