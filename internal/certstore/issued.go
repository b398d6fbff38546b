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
)

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

	e := newExpr()
	e.Set(attrDomain, avS(in.Domain))
	e.Set(attrSANs, avL(sans))
	e.Set(attrCertPEM, avS(in.CertPEM))
	e.Set(attrKeyWrapped, avB(in.Key.Wrapped))
	e.Set(attrKeyCiphertext, avB(in.Key.Ciphertext))
	e.Set(attrKeyType, avS(in.KeyType))
	nb := e.v(avT(in.NotBefore))
	e.SetRaw(e.n(attrNotBefore) + " = " + nb)
	e.Set(attrNotAfter, avT(in.NotAfter))
	sv := e.v(avS(serial))
	e.SetRaw(e.n(attrSerial) + " = " + sv)
	e.Set(attrIssuer, avS(in.Issuer))
	if in.ARICertID != "" {
		e.Set(attrARICertID, avS(in.ARICertID))
	} else {
		e.Remove(attrARICertID)
	}
	e.Set(attrRenewAt, avT(in.RenewAt))
	e.Set(attrStatus, avS(string(StatusActive)))
	e.Set(attrShard, avS(ShardOf(in.Domain)))
	e.Set(attrUpdatedAt, avT(now))
	e.Remove(attrFailureCount, attrFirstFailureAt, attrLastErrorCode, attrLastErrorMessage,
		attrNextAttemptAt, attrUnpauseURL, attrQuarantineReason)
	e.Add(attrVersion, avN(1))
	e.If("attribute_exists(%s)", e.n(attrPK))
	e.If("%s <> %s", e.n(attrStatus), e.v(avS(string(StatusRetired))))
	e.If("attribute_not_exists(%s) OR %s <= %s", e.n(attrNotBefore), e.n(attrNotBefore), nb)
	e.If("attribute_not_exists(%s) OR %s <> %s", e.n(attrSerial), e.n(attrSerial), sv)

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
	r := &itemReader{item: old}
	switch {
	case Status(r.s(attrStatus)) == StatusRetired:
		return fmt.Errorf("store certificate %q: %w", in.Domain, ErrRetired)
	case r.s(attrSerial) == strings.ToLower(in.Serial):
		return nil
	default:
		return fmt.Errorf("store certificate %q: serial %s (notBefore %s) is older than stored %s (notBefore %s): %w",
			in.Domain, strings.ToLower(in.Serial), FormatTime(in.NotBefore), r.s(attrSerial), r.s(attrNotBefore), ErrStale)
	}
}
