package preflight

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/certflow/certflow/internal/failure"
	"github.com/certflow/certflow/internal/validation"
)

// checkRecords reports whether the records a domain was asked to publish
// for its validation are there: each CNAME (the DNS-01 delegation) points
// where it must, each TXT (DNS-PERSIST-01) names the CA and this
// deployment's ACME account. A missing or wrong record is a
// *failure.ValidationRecordError naming which; the DNS failing is a
// *failure.TransientError.
func (c *Checker) checkRecords(ctx context.Context, records []validation.Record) error {
	for _, r := range records {
		var err error
		switch r.Type {
		case "CNAME":
			err = c.checkDelegation(ctx, r)
		case "TXT":
			err = c.checkPersist(ctx, r)
		default:
			err = &failure.InvalidInputError{Message: fmt.Sprintf("validation record %s of type %q", r.Name, r.Type)}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkDelegation checks the "_acme-challenge" CNAME of r.
func (c *Checker) checkDelegation(ctx context.Context, r validation.Record) error {
	resp, err := c.query(ctx, r.Name, dns.TypeCNAME)
	if err != nil {
		return err
	}
	want := strings.ToLower(strings.TrimSuffix(r.Value, "."))
	var got []string
	for _, rr := range resp.Answer {
		if cn, ok := rr.(*dns.CNAME); ok && strings.EqualFold(strings.TrimSuffix(cn.Hdr.Name, "."), r.Name) {
			target := strings.ToLower(strings.TrimSuffix(cn.Target, "."))
			if target == want {
				return nil
			}
			got = append(got, target)
		}
	}
	msg := fmt.Sprintf("%s has no CNAME; want %s CNAME %s", r.Name, r.Name, want)
	if len(got) > 0 {
		msg = fmt.Sprintf("%s CNAME %s; want %s", r.Name, strings.Join(got, ", "), want)
	}
	return &failure.ValidationRecordError{Code: failure.CodeDelegationMissing, Message: msg}
}

// checkPersist checks the DNS-PERSIST-01 TXT record of r: a record for
// r's CA that names r's account (and allows wildcards when r does).
func (c *Checker) checkPersist(ctx context.Context, r validation.Record) error {
	issuer, account, wildcard, ok := validation.PersistFields(r.Value)
	if !ok {
		return &failure.InvalidInputError{Message: fmt.Sprintf("validation record %s: %q is not a DNS-PERSIST-01 value", r.Name, r.Value)}
	}
	resp, err := c.query(ctx, r.Name, dns.TypeTXT)
	if err != nil {
		return err
	}
	var others []string
	for _, rr := range resp.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		gotIssuer, gotAccount, gotWildcard, ok := validation.PersistFields(strings.Join(txt.Txt, ""))
		if !ok || gotIssuer != issuer {
			continue
		}
		if gotAccount == account && (gotWildcard || !wildcard) {
			return nil
		}
		others = append(others, strings.Join(txt.Txt, ""))
	}
	if len(others) > 0 {
		return &failure.ValidationRecordError{Code: failure.CodePersistRecordWrongAccount,
			Message: fmt.Sprintf("%s TXT %q; want %q", r.Name, strings.Join(others, `", "`), r.Value)}
	}
	return &failure.ValidationRecordError{Code: failure.CodePersistRecordMissing,
		Message: fmt.Sprintf("%s has no DNS-PERSIST-01 record for %s; want TXT %q", r.Name, issuer, r.Value)}
}
