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

	"github.com/certflow/certflow/internal/table"
)

// maxTransactItems is DynamoDB's limit of actions in one transaction.
const maxTransactItems = 100

// Issued is a newly issued certificate to store.
type Issued struct {
	Domain string
	// Execution is the name of the execution storing it: it must own the
	// domain.
	Execution string
	SANs      []string // every name the certificate covers, Domain included
	CertPEM   string   // leaf then chain
	Key       SealedKey
	KeyType   string
	NotBefore time.Time
	NotAfter  time.Time
	Serial    string // hex; stored lower case
	Issuer    string
	CA        string // which of the deployment's CAs issued it
	ARICertID string
	RenewAt   time.Time
}

func (in Issued) validate() error {
	switch {
	case in.Domain == "":
		return errors.New("domain is empty")
	case in.Execution == "":
		return errors.New("execution is empty")
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
// update (action 0, conditioned), the timer, the pending order's deletion
// and the alias updates.
func (s *Store) saveIssuedInput(in Issued, now time.Time) (*dynamodb.TransactWriteItemsInput, error) {
	aliases := in.aliases()
	if 3+len(aliases) > maxTransactItems {
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
	e.Set(table.AttrSerial, table.S(serial))
	e.Set(table.AttrIssuer, table.S(in.Issuer))
	if in.CA != "" {
		e.Set(table.AttrCA, table.S(in.CA))
	} else {
		e.Remove(table.AttrCA)
	}
	if in.ARICertID != "" {
		e.Set(table.AttrARICertID, table.S(in.ARICertID))
	} else {
		e.Remove(table.AttrARICertID)
	}
	e.Set(table.AttrRenewAt, table.T(in.RenewAt))
	e.Set(table.AttrDueAt, table.T(s.due(in.RenewAt)))
	e.Set(table.AttrStatus, table.S(string(StatusActive)))
	e.Set(table.AttrShard, table.S(table.ShardOf(in.Domain)))
	e.Set(table.AttrRun, table.N(0))
	e.Set(table.AttrUpdatedAt, table.T(now))
	e.Remove(failureAttrs...)
	e.Remove(table.AttrExecution, table.AttrSpentSlot, table.AttrLease, table.AttrLeaseUntil)
	e.Add(table.AttrVersion, table.N(1))
	fence(e, in.Execution)
	e.If("attribute_not_exists(%s) OR %s <= %s", e.Name(table.AttrNotBefore), e.Name(table.AttrNotBefore), nb)

	items := []types.TransactWriteItem{
		s.txUpdateCert(in.Domain, e),
		s.putTimer(Timer{Domain: in.Domain, Serial: serial, ARICertID: in.ARICertID, RenewAt: in.RenewAt}),
		s.deleteOrder(in.Domain),
	}
	// The aliases were claimed by the request with the tenant; an update
	// keeps it.
	for _, san := range aliases {
		a := table.NewExpr()
		a.Set(table.AttrDomain, table.S(in.Domain))
		a.Set(table.AttrTarget, table.S(san))
		if p := table.ParentOf(san); p != "" {
			a.Set(table.AttrParent, table.S(p))
		}
		a.Remove(table.AttrRetiredAt)
		a.If("attribute_not_exists(%s) OR %s = %s", a.Name(table.AttrPK), a.Name(table.AttrDomain), a.Value(table.S(in.Domain)))
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                 aws.String(s.table),
			Key:                       table.DomainKey(san, table.SKAlias),
			UpdateExpression:          a.Update(),
			ConditionExpression:       a.Condition(),
			ExpressionAttributeNames:  a.Names(),
			ExpressionAttributeValues: a.Values(),
		}})
	}
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, nil
}

// SaveIssued stores a newly issued certificate for the execution that owns
// the domain, in one transaction: the certificate item becomes active with
// the new certificate (failure fields cleared, version incremented, no
// execution owns it any more, dueAt its renewal time plus the grace), the
// renewal timer is replaced by one that expires at RenewAt, the pending
// order is deleted, and every SAN is an alias of the domain (a SAN another
// domain holds fails the transaction with ErrNameTaken).
//
// An older certificate never replaces a newer one (ErrStale). Storing the
// serial already stored is a no-op that returns nil, so the Issue step can
// be retried. A retired domain returns ErrRetired, a domain another
// execution owns ErrSuperseded, one never requested ErrNotFound.
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
		if _, aliasFailed, _ := transactionFailure(err, aliasActions(len(input.TransactItems))...); aliasFailed {
			return fmt.Errorf("store certificate %q: %w", in.Domain, &NameTakenError{Name: strings.Join(in.aliases(), ", ")})
		}
		if !conflict || attempt == maxAttempts {
			return fmt.Errorf("store certificate %q: %w", in.Domain, err)
		}
		if err := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return fmt.Errorf("store certificate %q: %w", in.Domain, err)
		}
	}
}

// aliasActions are the indexes of the alias updates in a transaction of n
// actions built by saveIssuedInput.
func aliasActions(n int) []int {
	var out []int
	for i := 3; i < n; i++ {
		out = append(out, i)
	}
	return out
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
	case r.S(table.AttrExecution) != in.Execution:
		return fmt.Errorf("store certificate %q: %w", in.Domain, fenceFailure(old, in.Execution))
	default:
		return fmt.Errorf("store certificate %q: serial %s (notBefore %s) is older than stored %s (notBefore %s): %w",
			in.Domain, strings.ToLower(in.Serial), table.FormatTime(in.NotBefore), r.S(table.AttrSerial), r.S(table.AttrNotBefore), ErrStale)
	}
}
