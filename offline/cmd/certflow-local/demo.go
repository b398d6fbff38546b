package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/certflow/certflow/certclient"
	"github.com/certflow/certflow/internal/flow"
	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/deploy"
	"github.com/certflow/certflow/offline/proc"
	"github.com/certflow/certflow/offline/template"
)

// The demo's custom domains; elsewhere.customer.example points away from the
// edge (127.0.0.2) like a domain whose owner moved it. store and persist
// point there too, because their owners have not moved them to the
// platform yet: they are onboarded before cutover, store (and every name
// below it) through a DNS-01 delegation CNAME, persist through one standing
// DNS-PERSIST-01 record. short asks for short-lived certificates.
const (
	blog      = "blog.customer.example"
	shop      = "shop.customer.example"
	idn       = "bücher.customer.example"
	elsewhere = "elsewhere.customer.example"
	store     = "store.customer.example"
	persist   = "persist.customer.example"
	short     = "short.customer.example"
)

// status is the part of the API's status document the demo shows.
type status struct {
	Domain     string `json:"domain"`
	Status     string `json:"status"`
	Serial     string `json:"serial"`
	NotBefore  string `json:"notBefore"`
	NotAfter   string `json:"notAfter"`
	Validation string `json:"validation"`
	Profile    string `json:"profile"`
	DNSRecords []struct {
		Name, Type, Value string
	} `json:"dnsRecords"`
	RenewAt   string `json:"renewAt"`
	Failures  int    `json:"failureCount"`
	LastError *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"lastError"`
	QuarantineReason string `json:"quarantineReason"`
	UpdatedAt        string `json:"updatedAt"`
}

// demo runs the main job end to end against a system started in a child
// process (as `make run` would run it), and fails on the first broken step.
func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	timeout := fs.Duration("timeout", 4*time.Minute, "give up after this long")
	// Quick certificates and waits, so the renewal happens within the demo.
	fs.Set("validity", "90s")
	fs.Set("wait", "1s")
	fs.Set("sweep", "20s")
	// The demo shows a renewal started by the TTL timer; leave the sweeper
	// out of it unless the timer is a minute late (DynamoDB Local's TTL
	// takes 10-20 s, more on a loaded machine).
	fs.Set("grace", "60s")
	// The domain pointed elsewhere is offboarded within the demo.
	fs.Set("offboard-after", "30s")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()

	logPath := filepath.Join(os.TempDir(), "certflow-demo.log")
	step("starting the offline system (logs: %s)", logPath)
	child, err := startChild(f, logPath)
	if err != nil {
		return err
	}
	defer stopChild(child)
	d := &demoClient{api: fmt.Sprintf("http://127.0.0.1:%d", f.ports.API), http: &http.Client{Timeout: 30 * time.Second}}
	if err := d.waitReady(ctx, child); err != nil {
		return withLog(err, logPath)
	}
	done("system ready in %s", time.Since(start).Round(time.Second))

	for _, name := range []string{elsewhere, store, persist} {
		why := "its owner moved away"
		if name != elsewhere {
			why = "not cut over to the platform yet"
		}
		step("pointing %s at %s (%s)", name, offline.ElsewhereAddress, why)
		if err := challSrv(ctx, f.ports.ChallSrvManagement, "/add-a", map[string]any{"host": name + ".", "addresses": []string{offline.ElsewhereAddress}}); err != nil {
			return err
		}
	}

	step("requesting certificates through the HTTP API")
	requests := []map[string]any{
		{"domain": blog, "sans": []string{"www." + blog}},
		{"domain": shop},
		{"domain": idn},
		{"domain": elsewhere},
		{"domain": store, "sans": []string{"*." + store}, "validation": "dns-01"},
		{"domain": persist, "validation": "dns-persist-01"},
		{"domain": short, "profile": "shortlived"},
	}
	for _, req := range requests {
		code, body, err := d.do(ctx, http.MethodPost, "/certificates", req)
		if err != nil {
			return err
		}
		if code != http.StatusAccepted {
			return fmt.Errorf("POST /certificates %v: %d %s", req, code, body)
		}
		shown, _ := json.Marshal(req)
		fmt.Printf("    POST /certificates %s -> %d\n", shown, code)
		var doc status
		if err := json.Unmarshal(body, &doc); err != nil {
			return err
		}
		// The customer publishes the records the status document names
		// (here, in challtestsrv's DNS).
		for _, r := range doc.DNSRecords {
			fmt.Printf("      the customer publishes: %s %s %q\n", r.Name, r.Type, r.Value)
			var err error
			switch r.Type {
			case "CNAME":
				err = challSrv(ctx, f.ports.ChallSrvManagement, "/set-cname", map[string]any{"host": r.Name + ".", "target": r.Value + "."})
			case "TXT":
				err = challSrv(ctx, f.ports.ChallSrvManagement, "/set-txt", map[string]any{"host": r.Name + ".", "value": r.Value})
			}
			if err != nil {
				return err
			}
		}
	}

	step("watching statuses until every domain is settled")
	want := map[string]string{blog: "active", shop: "active", "xn--bcher-kva.customer.example": "active", elsewhere: "quarantined",
		store: "active", persist: "active", short: "active"}
	final, err := d.watch(ctx, want)
	if err != nil {
		return withLog(err, logPath)
	}
	q := final[elsewhere]
	if q.QuarantineReason != "domain_not_pointed" {
		return fmt.Errorf("%s quarantined for %q, want domain_not_pointed", elsewhere, q.QuarantineReason)
	}
	done("%s quarantined after %d failed preflights: %s", elsewhere, q.Failures, lastError(q))

	sfnClient := localSFN(f.ports.SFN)
	orders, err := issueInvocations(ctx, sfnClient, elsewhere)
	if err != nil {
		return err
	}
	if orders != 0 {
		return fmt.Errorf("%s reached the Issue step %d times, want 0 (no ACME order for a domain that is not pointed)", elsewhere, orders)
	}
	done("no ACME order was ever placed for %s (its executions never entered Issue)", elsewhere)

	step("TLS handshake for %s through the delivery endpoint (certclient)", blog)
	serial, notAfter, err := handshake(ctx, d.api, f.ports.PebbleManagement, blog)
	if err != nil {
		return err
	}
	done("handshake ok: chain verified against Pebble's root, serial %s, not after %s", serial, notAfter.Format(time.RFC3339))

	step("onboarded before cutover: %s (DNS-01 through the delegation CNAME) and %s (DNS-PERSIST-01)", store, persist)
	for _, c := range []struct{ name, domain string }{{"www." + store, store}, {persist, persist}} {
		serial, _, err := handshake(ctx, d.api, f.ports.PebbleManagement, c.name)
		if err != nil {
			return err
		}
		done("handshake for %s ok (serial %s, validated by %s) while %s still points at %s, where no HTTP-01 answer could come from",
			c.name, serial, final[c.domain].Validation, c.domain, offline.ElsewhereAddress)
	}

	life := func(s status) time.Duration {
		nb, _ := time.Parse(time.RFC3339, s.NotBefore)
		na, _ := time.Parse(time.RFC3339, s.NotAfter)
		return na.Sub(nb).Round(time.Second)
	}
	step("waiting for the renewal of %s (profile %s: lives %s, %s's lives %s)", short, final[short].Profile, life(final[short]), blog, life(final[blog]))
	renewedShort, err := d.waitRenewal(ctx, short, final[short])
	if err != nil {
		return withLog(err, logPath)
	}
	if renewedShort.UpdatedAt > final[short].NotAfter {
		return fmt.Errorf("%s renewed at %s, after its certificate expired at %s", short, renewedShort.UpdatedAt, final[short].NotAfter)
	}
	done("renewed on time: serial %s -> %s at %s, before the old one expired at %s", final[short].Serial, renewedShort.Serial, renewedShort.UpdatedAt, final[short].NotAfter)

	step("waiting for the TTL-triggered renewal of %s (timer deleted by DynamoDB TTL -> stream -> renewal-trigger -> state machine)", blog)
	renewed, err := d.waitRenewal(ctx, blog, final[blog])
	if err != nil {
		return withLog(err, logPath)
	}
	done("renewed: serial %s -> %s, not after %s -> %s", final[blog].Serial, renewed.Serial, final[blog].NotAfter, renewed.NotAfter)
	names, err := renewalExecutions(ctx, sfnClient, blog)
	if err != nil {
		return err
	}
	done("renewal executions: %s", strings.Join(names, ", "))

	step("waiting for %s to be offboarded (it stayed moved away for %s)", elsewhere, f.offboard)
	gone, err := d.waitStatus(ctx, elsewhere, "retired")
	if err != nil {
		return withLog(err, logPath)
	}
	done("%s offboarded by the sweeper at %s: key material deleted, Domain Offboarded published", elsewhere, gone.UpdatedAt)

	fmt.Printf("\ndemo: every step passed in %s\n", time.Since(start).Round(time.Second))
	return nil
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }
func done(format string, args ...any) { fmt.Printf("    ok: "+format+"\n", args...) }

func lastError(s status) string {
	if s.LastError == nil {
		return ""
	}
	return s.LastError.Code + ": " + s.LastError.Message
}

func withLog(err error, logPath string) error {
	b, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, logPath, strings.Join(lines, "\n"))
}

// startChild starts the offline system (`certflow-local run`) as a child
// process.
func startChild(f runFlags, logPath string) (*proc.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := f.ports
	args := []string{"run", "-log", logPath,
		"-validity", f.validity.String(), "-wait", f.wait.String(), "-sweep", f.sweep.String(), "-grace", f.grace.String(), "-offboard-after", f.offboard.String(),
		fmt.Sprint("-api-port=", p.API), fmt.Sprint("-dynamodb-port=", p.DynamoDB), fmt.Sprint("-lambda-port=", p.Lambda),
		fmt.Sprint("-sfn-port=", p.SFN), fmt.Sprint("-moto-port=", p.Moto), fmt.Sprint("-pebble-port=", p.Pebble),
		fmt.Sprint("-pebble-management-port=", p.PebbleManagement), fmt.Sprint("-dns-port=", p.DNS),
		fmt.Sprint("-challtestsrv-port=", p.ChallSrvManagement), fmt.Sprint("-http01-port=", p.HTTP01),
		fmt.Sprint("-tlsalpn-port=", p.PebbleTLSALPN)}
	if f.maxFail != "" {
		args = append(args, "-max-failures", f.maxFail)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	return proc.Start("the offline system", cmd)
}

func stopChild(c *proc.Process) {
	step("stopping the offline system")
	c.Stop(20 * time.Second)
}

type demoClient struct {
	api  string
	http *http.Client
}

func (d *demoClient) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.api+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (d *demoClient) waitReady(ctx context.Context, c *proc.Process) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	for {
		if code, _, err := d.do(ctx, http.MethodGet, "/certificates?status=active", nil); err == nil && code == http.StatusOK {
			return nil
		}
		if n := int(time.Since(begin).Seconds()); n > 0 && n%5 == 0 {
			fmt.Printf("    waiting for the system ... %ds\n", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the offline system did not become ready: %w", ctx.Err())
		case <-c.Done():
			return errors.New("the offline system exited before it was ready")
		case <-tick.C:
		}
	}
}

func (d *demoClient) get(ctx context.Context, domain string) (status, error) {
	code, body, err := d.do(ctx, http.MethodGet, "/certificates/"+domain, nil)
	if err != nil {
		return status{}, err
	}
	if code != http.StatusOK {
		return status{}, fmt.Errorf("GET /certificates/%s: %d %s", domain, code, body)
	}
	var s status
	return s, json.Unmarshal(body, &s)
}

// waitStatus polls domain until it has status want.
func (d *demoClient) waitStatus(ctx context.Context, domain, want string) (status, error) {
	for {
		s, err := d.get(ctx, domain)
		if err == nil && s.Status == want {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("%s is %s, not %s: %w", domain, s.Status, want, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// watch prints every status change until each domain reaches its wanted
// status; a domain settling elsewhere fails the demo.
func (d *demoClient) watch(ctx context.Context, want map[string]string) (map[string]status, error) {
	last := map[string]string{}
	final := map[string]status{}
	begin := time.Now()
	for {
		settled := 0
		for domain, target := range want {
			s, err := d.get(ctx, domain)
			if err != nil {
				return nil, err
			}
			line := s.Status
			if s.Failures > 0 {
				line += fmt.Sprintf(" (failures: %d, last: %s)", s.Failures, lastError(s))
			}
			if line != last[domain] {
				fmt.Printf("    [%5.1fs] %-32s %s\n", time.Since(begin).Seconds(), domain, line)
				last[domain] = line
			}
			switch {
			case s.Status == target:
				final[domain] = s
				settled++
			case s.Status == "quarantined" || s.Status == "retired":
				return nil, fmt.Errorf("%s ended %s (%s), want %s", domain, s.Status, lastError(s), target)
			}
		}
		if settled == len(want) {
			return final, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("domains did not settle: %w (last: %v)", ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

func (d *demoClient) waitRenewal(ctx context.Context, domain string, before status) (status, error) {
	begin := time.Now()
	for {
		s, err := d.get(ctx, domain)
		if err != nil {
			return status{}, err
		}
		if s.Status == "active" && s.Serial != "" && s.Serial != before.Serial {
			if s.NotAfter <= before.NotAfter {
				return s, fmt.Errorf("renewed certificate's not-after %s is not later than %s", s.NotAfter, before.NotAfter)
			}
			return s, nil
		}
		fmt.Printf("    %3ds: serial %s, renewal due at %s\n", int(time.Since(begin).Seconds()), s.Serial, s.RenewAt)
		select {
		case <-ctx.Done():
			return status{}, fmt.Errorf("no renewal of %s: %w", domain, ctx.Err())
		case <-time.After(5 * time.Second):
		}
	}
}

func challSrv(ctx context.Context, port int, path string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("challtestsrv %s: %w", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("challtestsrv %s: %s", path, resp.Status)
	}
	return nil
}

func localSFN(port int) *sfn.Client {
	return sfn.New(sfn.Options{
		Region:       offline.Region,
		BaseEndpoint: aws.String(fmt.Sprintf("http://127.0.0.1:%d", port)),
		Credentials:  credentials.NewStaticCredentialsProvider("offline", "offline", ""),
	})
}

// issueInvocations counts how often executions for domain entered Issue.
func issueInvocations(ctx context.Context, c *sfn.Client, domain string) (int, error) {
	list, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(stateMachineARN()), MaxResults: 100})
	if err != nil {
		return 0, fmt.Errorf("list executions: %w", err)
	}
	n := 0
	for _, e := range list.Executions {
		hist, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: e.ExecutionArn, MaxResults: 1000})
		if err != nil {
			return 0, fmt.Errorf("execution history: %w", err)
		}
		ours := false
		entered := 0
		for _, ev := range hist.Events {
			if ev.Type == sfntypes.HistoryEventTypeExecutionStarted && ev.ExecutionStartedEventDetails != nil &&
				strings.Contains(aws.ToString(ev.ExecutionStartedEventDetails.Input), `"`+domain+`"`) {
				ours = true
			}
			if d := ev.StateEnteredEventDetails; d != nil && aws.ToString(d.Name) == "Issue" {
				entered++
			}
		}
		if ours {
			n += entered
		}
	}
	return n, nil
}

// renewalExecutions lists domain's renewal executions with what started
// them; the demo's renewal must have been started by the TTL timer (the
// sweeper only rescues renewals whose timer is late).
func renewalExecutions(ctx context.Context, c *sfn.Client, domain string) ([]string, error) {
	list, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(stateMachineARN()), MaxResults: 1000})
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	var names []string
	byTimer := false
	for _, e := range list.Executions {
		n := aws.ToString(e.Name)
		if !strings.HasPrefix(n, "renew-") {
			continue
		}
		d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: e.ExecutionArn})
		if err != nil {
			return nil, fmt.Errorf("describe execution %s: %w", n, err)
		}
		var in flow.Input
		if err := json.Unmarshal([]byte(aws.ToString(d.Input)), &in); err != nil {
			return nil, fmt.Errorf("execution %s input: %w", n, err)
		}
		if in.Domain != domain {
			continue
		}
		byTimer = byTimer || in.StartedBy == flow.StartedByTimer
		names = append(names, fmt.Sprintf("%s (%s, started by the %s)", n, e.Status, in.StartedBy))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no renewal execution of %s was started", domain)
	}
	if !byTimer {
		return nil, fmt.Errorf("no renewal of %s was started by its TTL timer: %s", domain, strings.Join(names, ", "))
	}
	return names, nil
}

func stateMachineARN() string {
	return template.StateMachineARN(deploy.StateMachine)
}

// handshake serves TLS with certclient fetching certificates from the
// delivery endpoint, connects as a client that trusts only Pebble's root,
// and returns what the client verified.
func handshake(ctx context.Context, api string, pebbleMgmtPort int, name string) (string, time.Time, error) {
	roots, err := pebbleRoots(ctx, pebbleMgmtPort)
	if err != nil {
		return "", time.Time{}, err
	}
	client, err := certclient.New(certclient.Config{BaseURL: api, AllowInsecureHTTP: true}) // the offline API on 127.0.0.1
	if err != nil {
		return "", time.Time{}, err
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: client.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		return "", time.Time{}, err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).HandshakeContext(ctx)
				c.Write([]byte("hello from " + name + "\n"))
			}()
		}
	}()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS12}}
	conn, err := dialer.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		return "", time.Time{}, fmt.Errorf("TLS handshake for %s: %w", name, err)
	}
	defer conn.Close()
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	return hex.EncodeToString(leaf.SerialNumber.Bytes()), leaf.NotAfter, nil
}

func pebbleRoots(ctx context.Context, port int) (*x509.CertPool, error) {
	tools, err := offline.FindTools("")
	if tools == nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(tools.PebbleTestDir, "certs", "pebble.minica.pem"))
	if err != nil {
		return nil, err
	}
	mgmtPool := x509.NewCertPool()
	mgmtPool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: mgmtPool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/roots/0", port), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch Pebble's root: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no certificate in Pebble's /roots/0")
	}
	return pool, nil
}
