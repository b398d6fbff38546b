package scale

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/certflow/certflow/offline/offlinetest"
)

// TestScaleSmall is the small version of `make scale` that `make test`
// runs: 150 new domains at once (8 pointed elsewhere) against a budget of
// 40 per 10 s, while 15 certificates come due for renewal. Every invariant
// must hold: nothing stuck, no execution failed, one order per domain, the
// budget never exceeded in any window.
func TestScaleSmall(t *testing.T) {
	offlinetest.Require(t)
	var progress io.Writer = io.Discard
	if testing.Verbose() {
		progress = os.Stderr
	}
	rep, err := Run(context.Background(), Config{N: 150, Renewals: 15, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scale run:\n%s", rep.Table())
	if err := rep.OK(); err != nil {
		t.Error(err)
	}
	if rep.Quarantined != 8 || rep.QuarantinedBy["domain_not_pointed"] != 8 {
		t.Errorf("quarantined %v, want the 8 domains pointed elsewhere", rep.QuarantinedBy)
	}
	if rep.TransitionsPerIssuance > 8 || rep.TransitionsPerRenewal > 8 {
		t.Errorf("transitions per issuance %.1f, per renewal %.1f; want at most 8", rep.TransitionsPerIssuance, rep.TransitionsPerRenewal)
	}
}
