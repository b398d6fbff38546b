package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certflow/certflow/offline/deploy"
	"github.com/certflow/certflow/offline/offlinetest"
)

// TestEdgeProxiesOffline is the edge end to end: certflow runs offline
// (offline/deploy: the functions, the state machine, Pebble as the CA),
// issues a certificate through the API, and each proxy serves it through
// the gateway, the chain verified against Pebble's root.
func TestEdgeProxiesOffline(t *testing.T) {
	offlinetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sys, err := deploy.Start(ctx, deploy.Config{
		WaitOverride:   100 * time.Millisecond,
		Setenv:         func(k, v string) error { t.Setenv(k, v); return nil },
		FunctionLogger: slog.New(slog.DiscardHandler),
		Logs:           io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	const name = "shop.customer.example"
	if err := requestActive(ctx, sys.APIURL, name); err != nil {
		t.Fatal(err)
	}
	roots, err := sys.Stack.PebbleRoots()
	if err != nil {
		t.Fatal(err)
	}
	gwPort := gatewayPort(t, startGateway(t, sys.APIURL))
	for _, p := range edgeProxies {
		t.Run(p.name, func(t *testing.T) {
			checkHandshakes(t, p.name, p.start(t, gwPort), roots, []string{name}, []string{"unknown.customer.example"})
		})
	}
}

// requestActive requests a certificate for name through the certificates API at
// api and waits until it is active.
func requestActive(ctx context.Context, api, name string) error {
	resp, err := http.Post(api+"/certificates", "application/json", strings.NewReader(fmt.Sprintf(`{"domain": %q}`, name)))
	if err != nil {
		return fmt.Errorf("request %s: %w", name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("request %s: %s", name, resp.Status)
	}
	var doc struct{ Status string }
	for doc.Status != "active" {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is %q, not active: %w", name, doc.Status, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		resp, err := http.Get(api + "/certificates/" + name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	return nil
}
