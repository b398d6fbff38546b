package gateway

import (
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certflow/certflow/certclient/certclienttest"
)

// issue returns a new leaf of ca for name, valid for 90 days.
func issue(tb testing.TB, ca *certclienttest.CA, name string, serial int64) []byte {
	tb.Helper()
	now := time.Now()
	return ca.Issue(tb, name, serial, now.Add(-time.Hour), now.Add(90*24*time.Hour))
}

// newDelivery returns a fake delivery endpoint for ca's certificates that
// says a name it does not know stays unknown for a minute.
func newDelivery(tb testing.TB, ca *certclienttest.CA) (*certclienttest.Delivery, *httptest.Server) {
	d, srv := certclienttest.NewDelivery(tb, ca)
	d.Configure(func(d *certclienttest.Delivery) { d.NotFoundAge = 60 })
	return d, srv
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
