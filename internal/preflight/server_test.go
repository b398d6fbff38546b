package preflight

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// zoneServer is a small DNS server over canned records, bound to 127.0.0.1
// on a random port for both UDP and TCP. With chase set it behaves like a
// recursive resolver, following CNAMEs inside its records; without, like an
// authoritative server answering with the CNAME alone.
type zoneServer struct {
	addr  string
	chase bool

	records  map[string][]dns.RR // by lower-case FQDN
	servfail map[string]uint16   // name -> qtype (0 = every type) answered SERVFAIL
	drop     map[string]bool     // names never answered
	truncate map[string]bool     // names answered truncated over UDP

	mu      sync.Mutex
	queries []string // "name TYPE net", for assertions
}

// newZoneServer parses zone, lets configure set the failure maps, and then
// starts serving (so the maps are never written while served).
func newZoneServer(t *testing.T, chase bool, zone string, configure func(*zoneServer)) *zoneServer {
	t.Helper()
	z := &zoneServer{chase: chase, records: map[string][]dns.RR{}, servfail: map[string]uint16{}, drop: map[string]bool{}, truncate: map[string]bool{}}
	parser := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	parser.SetDefaultTTL(60)
	for rr, ok := parser.Next(); ok; rr, ok = parser.Next() {
		name := strings.ToLower(rr.Header().Name)
		z.records[name] = append(z.records[name], rr)
	}
	if err := parser.Err(); err != nil {
		t.Fatalf("parse zone: %v", err)
	}
	if configure != nil {
		configure(z)
	}

	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	z.addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: z}
	tcp := &dns.Server{Listener: ln, Handler: z}
	for _, s := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return z
}

func (z *zoneServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	network := w.LocalAddr().Network()
	z.mu.Lock()
	z.queries = append(z.queries, name+" "+dns.TypeToString[q.Qtype]+" "+network)
	z.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if z.drop[name] {
		return
	}
	if t, ok := z.servfail[name]; ok && (t == 0 || t == q.Qtype) {
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	if z.truncate[name] && network == "udp" {
		m.Truncated = true
		_ = w.WriteMsg(m)
		return
	}
	cur := name
	seen := map[string]bool{}
	for {
		seen[cur] = true
		var cname *dns.CNAME
		for _, rr := range z.records[cur] {
			if c, ok := rr.(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				cname = c
			}
		}
		if cname == nil {
			for _, rr := range z.records[cur] {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
			if !z.exists(cur) {
				m.Rcode = dns.RcodeNameError
			}
			break
		}
		m.Answer = append(m.Answer, cname)
		cur = strings.ToLower(cname.Target)
		if !z.chase || seen[cur] {
			break
		}
	}
	_ = w.WriteMsg(m)
}

// exists reports whether name owns records or is an empty non-terminal.
func (z *zoneServer) exists(name string) bool {
	if len(z.records[name]) > 0 {
		return true
	}
	for n := range z.records {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

func (z *zoneServer) sawQuery(q string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range z.queries {
		if s == q {
			return true
		}
	}
	return false
}
