// Package table owns the layout of certflow's DynamoDB tables: every item's
// partition and sort key, every attribute name, the indexes, and how values
// are written (times, shards). The packages that keep items (certstore,
// account, budget, http01) build their keys and read their attributes
// through it, so the layout below is spelled once.
//
// CertificatesTable (keys pk, sk):
//
//	item                       pk                          sk              written by
//	certificate                DOMAIN#<name>               CERT            certstore
//	pending ACME order         DOMAIN#<name>               ORDER           certstore
//	alias (a SAN)              DOMAIN#<san>                ALIAS           certstore
//	HTTP-01 challenge          CHALLENGE#<token>           HTTP01          http01
//	ACME account               ACCOUNT#<sha256(dir)[:32]>  ACCOUNT         account
//	new-order budget counter   BUDGET#<name>               SEQ             budget
//	new-order budget slot      BUDGET#<name>               SLOT#<r>        budget
//	ARI re-check position      SWEEP#ARI                   SHARD#<00..15>  certstore
//
// RenewalTimersTable (keys pk, sk, nothing else declared):
//
//	renewal timer              DOMAIN#<name>               TIMER           certstore
//
// The shard attribute is present on a certificate item while its domain
// has work left (pending, failed, active): the ByDue and ByExpiry indexes
// are sparse. Certificate items carry the tenant that holds the domain
// (ByTenant), and certificate and alias items the parent of their name
// (ByParent), so a wildcard request can see who holds the names it would
// cover. An alias of a retired domain (or a SAN dropped by a new request)
// stays as a tombstone (retiredAt), tenant kept: delivery never falls
// back from a name its tenant held to another tenant's wildcard.
//
// Times are RFC 3339 UTC with second precision ("2006-01-02T15:04:05Z",
// sortable as strings), except expiresAt (epoch seconds, the TTL attribute
// of both tables) and a budget slot (Unix milliseconds).
package table

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Key attributes of both tables.
const (
	AttrPK = "pk"
	AttrSK = "sk"
)

// AttrExpiresAt is the TTL attribute of both tables (epoch seconds).
const AttrExpiresAt = "expiresAt"

// Sort keys of the item kinds.
const (
	SKCert      = "CERT"
	SKAlias     = "ALIAS"
	SKTimer     = "TIMER"
	SKChallenge = "HTTP01"
	SKAccount   = "ACCOUNT"
	SKOrder     = "ORDER"
	SKBudgetSeq = "SEQ"
)

// Partition key prefixes.
const (
	DomainPrefix    = "DOMAIN#"
	ChallengePrefix = "CHALLENGE#"
	AccountPrefix   = "ACCOUNT#"
	BudgetPrefix    = "BUDGET#"
	SweepARIPK      = "SWEEP#ARI"
)

// Attributes of certificate items (and what alias and timer items share).
const (
	AttrDomain = "domain"
	AttrTarget = "target" // alias: the name the alias answers for
	// AttrTenant is the tenant that holds the domain: on certificate items
	// (the ByTenant key) and alias items.
	AttrTenant = "tenant"
	// AttrParent is the name one label up from the item's name (the
	// ByParent key), on certificate and alias items: "b.example" for
	// "a.b.example" and for "*.b.example".
	AttrParent = "parent"
	// AttrRetiredAt marks an alias item as a tombstone: the SAN was
	// retired (with its domain, or dropped by a new request) then.
	AttrRetiredAt        = "retiredAt"
	AttrSANs             = "sans"
	AttrStatus           = "status"
	AttrVersion          = "version"
	AttrGeneration       = "generation"
	AttrCertPEM          = "certPEM"
	AttrKeyWrapped       = "keyWrapped"
	AttrKeyCiphertext    = "keyCiphertext"
	AttrKeyType          = "keyType"
	AttrNotBefore        = "notBefore"
	AttrNotAfter         = "notAfter"
	AttrSerial           = "serial"
	AttrIssuer           = "issuer"
	AttrCA               = "ca" // which of the deployment's CAs issued the certificate (flow.CAPrimary, flow.CAFallback)
	AttrARICertID        = "ariCertID"
	AttrRenewAt          = "renewAt"
	AttrShard            = "shard"
	AttrFailureCount     = "failureCount"
	AttrFirstFailureAt   = "firstFailureAt"
	AttrLastErrorCode    = "lastErrorCode"
	AttrLastErrorMessage = "lastErrorMessage"
	AttrNextAttemptAt    = "nextAttemptAt"
	AttrUnpauseURL       = "unpauseURL"
	AttrQuarantineReason = "quarantineReason"
	AttrExecution        = "execution" // the name of the execution that owns the domain
	AttrRequestedAt      = "requestedAt"
	AttrUpdatedAt        = "updatedAt"
	// AttrRun counts the executions started for the current generation
	// (issuance) or certificate (renewal); it is part of their names.
	AttrRun = "run"
	// AttrDueAt is when the domain next needs attention: the sort key of
	// ByDue. The reconciler looks at a domain whose dueAt has passed.
	AttrDueAt = "dueAt"
	// AttrWaits counts the waits (backoffs, rate limits, outages) of the
	// current execution; past a bound the execution ends and the
	// reconciler starts the next run, so no execution's history grows
	// without end.
	AttrWaits = "waits"
	// AttrOutageCount counts consecutive attempts that failed on the CA's
	// or certflow's side; it sets the backoff and never quarantines.
	AttrOutageCount = "outageCount"
	// AttrSpentSlot is the seq of the new-order budget slot an order was
	// placed with: that slot cannot place another.
	AttrSpentSlot = "spentSlot"
	// AttrLease is the token of the Issue invocation working on the
	// domain's order, AttrLeaseUntil its deadline: one invocation at a
	// time, whichever execution it runs for (certstore.Lease).
	AttrLease      = "lease"
	AttrLeaseUntil = "leaseUntil"
	// AttrOwnershipToken is the value of the TXT records the customer
	// publishes to prove ownership (validation.Ownership), present when the
	// request asked for the proof; AttrOwnershipVerifiedAt is when
	// preflight found them.
	AttrOwnershipToken      = "ownershipToken"
	AttrOwnershipVerifiedAt = "ownershipVerifiedAt"
	// AttrValidation is how the domain proves control (validation.Method;
	// absent: HTTP-01), AttrRecords the DNS records it was asked to
	// publish for it (L of S, each validation.Record in presentation
	// form); AttrProfile (also an order item's) is the ACME profile the
	// platform asked for (absent: the deployment's default). A request
	// sets them for its generation.
	AttrValidation = "validation"
	AttrRecords    = "records"
)

// Attributes of pending order items.
const (
	AttrOrderURL = "orderURL"
	AttrNames    = "names"
	AttrReplaces = "replaces"
	AttrProfile  = "profile"
	AttrAccount  = "account"
	AttrCSR      = "csr"
)

// Attributes of new-order budget items.
const (
	AttrSeq    = "seq"
	AttrSlot   = "slot"   // Unix milliseconds
	AttrPlaced = "placed" // Unix milliseconds: the last order admitted for a ring position
)

// Attributes of challenge, account and sweep-position items.
const (
	AttrKeyAuth      = "keyAuth"
	AttrDirectoryURL = "directoryURL"
	AttrEmail        = "email"
	AttrRegistration = "registration"
	AttrCreatedAt    = "createdAt"
	AttrCursor       = "cursor"
)

// Indexes of the certificate table (template.yaml defines them).
const (
	// IndexByTenant: pk tenant, sk status; the status documents of a
	// tenant's domains.
	IndexByTenant = "ByTenant"
	// IndexByParent: pk parent, keys, tenant and status projected; the
	// certificate and alias items of the names one label below a name.
	IndexByParent = "ByParent"
	// IndexByDue: pk shard, sk dueAt; every domain with work left
	// (pending, failed, active), at the time it next needs attention.
	IndexByDue = "ByDue"
	// IndexByExpiry: pk shard, sk notAfter, keys only; the certificates of
	// those domains.
	IndexByExpiry = "ByExpiry"
)

// Key returns the key of the item pk/sk.
func Key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: S(pk), AttrSK: S(sk)}
}

// DomainPK is the partition key of a domain's items.
func DomainPK(name string) string { return DomainPrefix + name }

// DomainKey is the key of the item of kind sk (SKCert, SKAlias, SKTimer)
// of domain name.
func DomainKey(name, sk string) map[string]types.AttributeValue {
	return Key(DomainPK(name), sk)
}

// ChallengeKey is the key of the HTTP-01 challenge item of token.
func ChallengeKey(token string) map[string]types.AttributeValue {
	return Key(ChallengePrefix+token, SKChallenge)
}

// AccountPK is the partition key of the ACME account item of a directory:
// ACCOUNT# and the first 32 hex digits of the URL's SHA-256.
func AccountPK(directoryURL string) string {
	sum := sha256.Sum256([]byte(directoryURL))
	return AccountPrefix + hex.EncodeToString(sum[:])[:32]
}

// AccountKey is the key of the ACME account item of a directory.
func AccountKey(directoryURL string) map[string]types.AttributeValue {
	return Key(AccountPK(directoryURL), SKAccount)
}

// BudgetPK is the partition key of the items of the budget called name.
func BudgetPK(name string) string { return BudgetPrefix + name }

// BudgetSlotSK is the sort key of ring position r of a budget whose ring
// has size positions: SLOT# and r zero-padded to the width of size-1.
func BudgetSlotSK(r, size int) string {
	width := len(strconv.Itoa(max(size-1, 0)))
	return fmt.Sprintf("SLOT#%0*d", width, r)
}

// SweepARIKey is the key of the item keeping where the sweeper's ARI
// re-check of shard stopped.
func SweepARIKey(shard string) map[string]types.AttributeValue {
	return Key(SweepARIPK, "SHARD#"+shard)
}

// TimeLayout is RFC 3339 in UTC with second precision: sortable as a string.
const TimeLayout = "2006-01-02T15:04:05Z"

// FormatTime formats t the way the tables store times.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(TimeLayout) }

// ParseTime reads a time written by FormatTime.
func ParseTime(s string) (time.Time, error) { return time.Parse(TimeLayout, s) }

// shardCount is the number of partitions of the sparse renewal and expiry
// indexes.
const shardCount = 16

// ShardOf returns the index shard of domain: the first byte of
// sha256(domain) modulo 16, as two decimal digits ("00".."15").
func ShardOf(domain string) string {
	sum := sha256.Sum256([]byte(domain))
	return fmt.Sprintf("%02d", sum[0]%shardCount)
}

// Shards returns every shard, "00" to "15".
func Shards() []string {
	out := make([]string, shardCount)
	for i := range out {
		out[i] = fmt.Sprintf("%02d", i)
	}
	return out
}

// CheckShard returns an error unless shard is one of Shards.
func CheckShard(shard string) error {
	if !slices.Contains(Shards(), shard) {
		return fmt.Errorf("shard %q is not one of \"00\"..\"15\"", shard)
	}
	return nil
}

// ParentOf returns the name one label up from name, the ByParent key: ""
// when name has a single label.
func ParentOf(name string) string {
	_, parent, ok := strings.Cut(name, ".")
	if !ok {
		return ""
	}
	return parent
}

// DomainOfPK returns the name in a DOMAIN#<name> partition key.
func DomainOfPK(pk string) (string, bool) { return strings.CutPrefix(pk, DomainPrefix) }
