package deploy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/validation"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/offlinetest"
)

// requested is the part of a status document the validation test reads.
type requested struct {
	Status     string              `json:"status"`
	Validation validation.Method   `json:"validation"`
	DNSRecords []validation.Record `json:"dnsRecords"`
}

// TestValidationBeforeCutover runs the whole system offline with domains
// that point elsewhere (127.0.0.2, not cut over): a wildcard and its apex
// issued through the DNS-01 delegation CNAME, a name through its standing
// DNS-PERSIST-01 record, both renewed with nothing more from the customer;
// and, for records missing or wrong, the precise reason and not one order
// at the CA.
func TestValidationBeforeCutover(t *testing.T) {
	offlinetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const grace = 20 * time.Second
	sys, err := Start(ctx, Config{
		CAProxy:             true,
		CertificateValidity: time.Hour,
		WaitOverride:        100 * time.Millisecond,
		DueGrace:            grace,
		SweepEvery:          5 * time.Second,
		Setenv:              func(k, v string) error { t.Setenv(k, v); return nil },
		FunctionLogger:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Logs:                io.Discard,
		Metrics:             io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	store := certstore.New(dynamodb.NewFromConfig(sys.Stack.AWS), sys.Table, certstore.WithTimerTable(sys.TimerTable), certstore.WithGrace(grace))
	publish := func(r validation.Record, value string) {
		t.Helper()
		var err error
		switch r.Type {
		case "CNAME":
			err = sys.Stack.ChallSrv(ctx, "/set-cname", map[string]string{"host": r.Name + ".", "target": value + "."})
		case "TXT":
			err = sys.Stack.ChallSrv(ctx, "/set-txt", map[string]string{"host": r.Name + ".", "value": value})
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		body     string
		publish  func(r validation.Record) string // the value the customer publishes; "" publishes nothing
		reason   string                           // the failure's code; "" for an issued certificate
		wantSANs []string
	}{
		{name: "delegation", body: `{"domain": "store.customer.example", "sans": ["*.store.customer.example"], "validation": "dns-01"}`,
			publish: func(r validation.Record) string { return r.Value }, wantSANs: []string{"*.store.customer.example", "store.customer.example"}},
		{name: "persist", body: `{"domain": "persist.customer.example", "validation": "dns-persist-01"}`,
			publish: func(r validation.Record) string { return r.Value }, wantSANs: []string{"persist.customer.example"}},
		{name: "delegation missing", body: `{"domain": "nodelegation.customer.example", "validation": "dns-01"}`,
			publish: func(validation.Record) string { return "" }, reason: "delegation_missing"},
		{name: "delegation elsewhere", body: `{"domain": "oldprovider.customer.example", "validation": "dns-01"}`,
			publish: func(validation.Record) string { return "acme.old-provider.example" }, reason: "delegation_missing"},
		{name: "persist missing", body: `{"domain": "nopersist.customer.example", "validation": "dns-persist-01"}`,
			publish: func(validation.Record) string { return "" }, reason: "persist_record_missing"},
		{name: "persist for another account", body: `{"domain": "foreign.customer.example", "validation": "dns-persist-01"}`,
			publish: func(r validation.Record) string {
				issuer, _, _, _ := validation.PersistFields(r.Value)
				return issuer + "; accounturi=https://127.0.0.1:14000/my-account/someone-else"
			}, reason: "persist_record_wrong_account"},
	}
	domains := map[string]string{}
	for _, tt := range tests {
		var req struct{ Domain string }
		_ = json.Unmarshal([]byte(tt.body), &req)
		domains[tt.name] = req.Domain
		if err := sys.Stack.PointAt(ctx, req.Domain, offline.ElsewhereAddress); err != nil {
			t.Fatal(err)
		}
		doc := postBody(ctx, t, sys.APIURL, tt.body)
		if len(doc.DNSRecords) != 1 {
			t.Fatalf("%s: records to publish %+v, want one", tt.name, doc.DNSRecords)
		}
		if v := tt.publish(doc.DNSRecords[0]); v != "" {
			publish(doc.DNSRecords[0], v)
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := domains[tt.name]
			if tt.reason == "" {
				waitFor(ctx, t, sys.APIURL, d, func(x doc) bool { return x.Status == "active" })
				c, err := store.GetConsistent(ctx, d)
				if err != nil {
					t.Fatal(err)
				}
				sans := certSANs(t, c.CertPEM)
				if !slices.Equal(sans, tt.wantSANs) {
					t.Errorf("certificate for %s names %v, want %v", d, sans, tt.wantSANs)
				}
				// Renewal needs nothing more from the customer.
				if err := store.MoveTimer(ctx, d, c.Serial, c.ARICertID, time.Now().Add(time.Second)); err != nil {
					t.Fatal(err)
				}
				renewed := waitFor(ctx, t, sys.APIURL, d, func(x doc) bool { return x.Status == "active" && x.Serial != c.Serial })
				t.Logf("%s issued (%s) and renewed (%s) while pointing at %s", d, c.Serial, renewed.Serial, offline.ElsewhereAddress)
				return
			}
			c := waitItem(ctx, t, store, d, func(c *certstore.Certificate) bool { return c.LastErrorCode == tt.reason })
			if !strings.Contains(c.LastErrorMessage, "_") {
				t.Errorf("%s: message %q does not name the record", d, c.LastErrorMessage)
			}
			t.Logf("%s %s: %s: %s", d, c.Status, c.LastErrorCode, c.LastErrorMessage)
		})
	}
	for _, tt := range tests {
		if tt.reason == "" {
			continue
		}
		for _, o := range sys.CAProxy.Orders() {
			if slices.Contains(o.Identifiers, domains[tt.name]) {
				t.Errorf("an order was placed for %s (%s), whose records are %s", domains[tt.name], tt.name, tt.reason)
			}
		}
	}
}

// postBody posts body to POST /certificates and returns the 202's document.
func postBody(ctx context.Context, t *testing.T, api, body string) requested {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/certificates", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /certificates %s: %s %s", body, resp.Status, b)
	}
	var d requested
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitItem polls domain's item until ok.
func waitItem(ctx context.Context, t *testing.T, store *certstore.Store, domain string, ok func(*certstore.Certificate) bool) *certstore.Certificate {
	t.Helper()
	for {
		c, err := store.GetConsistent(ctx, domain)
		if err == nil && ok(c) {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: condition not reached, last %+v (%v)", domain, c, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// certSANs returns the DNS names of the leaf of a PEM chain, sorted.
func certSANs(t *testing.T, chain string) []string {
	t.Helper()
	block, _ := pem.Decode([]byte(chain))
	if block == nil {
		t.Fatal("no PEM certificate stored")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	names := slices.Clone(leaf.DNSNames)
	slices.Sort(names)
	return names
}
