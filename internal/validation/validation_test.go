package validation

import "testing"

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    Method
		wantErr bool
	}{
		{"", HTTP01, false}, {"http-01", HTTP01, false}, {"dns-01", DNS01, false}, {"dns-persist-01", DNSPersist01, false},
		{"DNS-01", "", true}, {"tls-alpn-01", "", true},
	} {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRecords(t *testing.T) {
	d := Delegation("*.Shop.Customer.Example.", "acme.platform.example.")
	if d.Name != "_acme-challenge.shop.customer.example" || d.Type != "CNAME" || d.Value != DelegationLabel("shop.customer.example")+".acme.platform.example" {
		t.Errorf("Delegation = %+v", d)
	}
	if len(DelegationLabel("a.example")) != 20 || DelegationLabel("a.example") == DelegationLabel("b.example") {
		t.Errorf("DelegationLabel is not a stable 20-digit label per name")
	}
	for _, tt := range []struct {
		name     string
		wildcard bool
		want     Record
	}{
		{"shop.customer.example", false, Record{"_validation-persist.shop.customer.example", "TXT", "letsencrypt.org; accounturi=https://ca.example/acct/1"}},
		{"shop.customer.example", true, Record{"_validation-persist.shop.customer.example", "TXT", "letsencrypt.org; accounturi=https://ca.example/acct/1; policy=wildcard"}},
		{"*.shop.customer.example", false, Record{"_validation-persist.shop.customer.example", "TXT", "letsencrypt.org; accounturi=https://ca.example/acct/1; policy=wildcard"}},
		{"*.Shop.Customer.Example.", false, Record{"_validation-persist.shop.customer.example", "TXT", "letsencrypt.org; accounturi=https://ca.example/acct/1; policy=wildcard"}},
	} {
		if got := Persist(tt.name, "LetsEncrypt.org", "https://ca.example/acct/1", tt.wildcard); got != tt.want {
			t.Errorf("Persist(%s, %v) = %+v, want %+v", tt.name, tt.wildcard, got, tt.want)
		}
	}
	issuer, account, wildcard, ok := PersistFields(" letsencrypt.org ; accounturi=https://ca.example/acct/1 ;policy=wildcard")
	if !ok || issuer != "letsencrypt.org" || account != "https://ca.example/acct/1" || !wildcard {
		t.Errorf("PersistFields = %q %q %v %v", issuer, account, wildcard, ok)
	}
	if _, _, _, ok := PersistFields("v=spf1 -all"); ok {
		t.Error("PersistFields took an SPF record for a persist record")
	}
}
