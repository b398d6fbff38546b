package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/internal/certstore"
	"github.com/certflow/certflow/internal/fixtures"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/internal/metrics"
)

type fakeSender struct {
	events []Event
	err    error
}

func (f *fakeSender) Publish(_ context.Context, ev Event) error {
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, ev)
	return nil
}

func TestStep(t *testing.T) {
	notAfter := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		cert       flow.Issued
		wantType   string
		wantMetric string
		wantErr    bool
	}{
		{"issued", flow.Issued{Serial: "0a", NotAfter: notAfter}, TypeIssued, metrics.CertificatesIssued, false},
		{"renewed", flow.Issued{Serial: "0b", NotAfter: notAfter, Renewed: true}, TypeRenewed, metrics.CertificatesRenewed, false},
		{"no certificate", flow.Issued{}, "", "", true},
		{"no serial", flow.Issued{NotAfter: notAfter}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			var emf bytes.Buffer
			got, err := NewStep(s, metrics.New(&emf, metrics.Namespace, nil)).Handle(context.Background(), Input{Domain: "a.example", Certificate: tt.cert})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if want := (Result{Domain: "a.example", Serial: tt.cert.Serial, Event: tt.wantType}); got != want {
				t.Errorf("Handle() = %+v, want %+v", got, want)
			}
			wantEv := Event{Type: tt.wantType, Domain: "a.example", Serial: tt.cert.Serial, NotAfter: notAfter}
			if len(s.events) != 1 || s.events[0] != wantEv {
				t.Errorf("events = %+v, want [%+v]", s.events, wantEv)
			}
			if !strings.Contains(emf.String(), `"`+tt.wantMetric+`":1`) {
				t.Errorf("metrics = %s, want %s", emf.String(), tt.wantMetric)
			}
		})
	}
}

// TestStepFixture runs events/notify.json (also used with sam local
// invoke) through the step.
func TestStepFixture(t *testing.T) {
	in := fixtures.StrictEvent[Input](t, "notify.json")
	s := &fakeSender{}
	got, err := NewStep(s, nil).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Domain: "blog.customer.example", Serial: "04a1b2c3d4e5f60718293a4b5c6d7e8f9a0b", Event: TypeRenewed}
	if got != want {
		t.Errorf("Handle(notify.json) = %+v, want %+v", got, want)
	}
	wantEv := Event{Type: TypeRenewed, Domain: "blog.customer.example", Serial: want.Serial, NotAfter: time.Date(2026, 5, 30, 11, 0, 0, 0, time.UTC)}
	if len(s.events) != 1 || s.events[0] != wantEv {
		t.Errorf("events = %+v, want [%+v]", s.events, wantEv)
	}
}

// fakeDomains answers GetConsistent with a fixed item or error.
type fakeDomains struct {
	cert *certstore.Certificate
	err  error
}

func (f fakeDomains) GetConsistent(context.Context, string) (*certstore.Certificate, error) {
	return f.cert, f.err
}

// TestStepRetiredDomain: a certificate of a domain retired (or deleted)
// since it was stored is not announced; a failed read announces anyway.
func TestStepRetiredDomain(t *testing.T) {
	cert := flow.Issued{Serial: "0a", NotAfter: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	tests := []struct {
		name     string
		domains  fakeDomains
		announce bool
	}{
		{"active", fakeDomains{cert: &certstore.Certificate{Domain: "a.example", Status: certstore.StatusActive}}, true},
		{"retired", fakeDomains{cert: &certstore.Certificate{Domain: "a.example", Status: certstore.StatusRetired}}, false},
		{"deleted", fakeDomains{err: fmt.Errorf("get: %w", certstore.ErrNotFound)}, false},
		{"read failed", fakeDomains{err: errors.New("throttled")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			got, err := NewStep(s, nil).WithDomains(tt.domains).Handle(context.Background(), Input{Domain: "a.example", Certificate: cert})
			if err != nil {
				t.Fatal(err)
			}
			if announced := len(s.events) == 1 && got.Event == TypeIssued; announced != tt.announce {
				t.Errorf("Handle() = %+v with events %+v, want announced %v", got, s.events, tt.announce)
			}
		})
	}
}
