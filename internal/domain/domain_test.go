package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// allowTesting is the policy of the offline stack, which the names of most
// tests need.
var allowTesting = Policy{AllowTestingTLDs: true}

// policies are the two a deployment can have.
var policies = []struct {
	name   string
	policy Policy
}{{"strict", Policy{}}, {"allow testing TLDs", allowTesting}}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "example.com", "example.com"},
		{"offline stack name", "blog.customer.example", "blog.customer.example"},
		{"test suffix", "app.test", "app.test"},
		{"upper case", "WWW.Example.COM", "www.example.com"},
		{"trailing dot", "example.com.", "example.com"},
		{"upper case and trailing dot", "Blog.Customer.Example.", "blog.customer.example"},
		{"digits and hyphens", "a-1.b2-c.example", "a-1.b2-c.example"},
		{"all-digit label not last", "123.example.com", "123.example.com"},
		{"label of 63", strings.Repeat("a", 63) + ".example", strings.Repeat("a", 63) + ".example"},
		{"name of 253", strings.Repeat("abcdefgh.", 27) + "abcdefghij", strings.Repeat("abcdefgh.", 27) + "abcdefghij"},
		{"wildcard of 253", "*." + strings.Repeat("abcdefgh.", 27) + "abcdefgh", "*." + strings.Repeat("abcdefgh.", 27) + "abcdefgh"},
		{"wildcard", "*.example.com", "*.example.com"},
		{"wildcard upper case", "*.EXAMPLE.com.", "*.example.com"},
		{"wildcard under private suffix", "*.foo.github.io", "*.foo.github.io"},
		{"name under private suffix", "foo.github.io", "foo.github.io"},
		{"name under co.uk", "shop.co.uk", "shop.co.uk"},
		{"IDN", "bücher.example", "xn--bcher-kva.example"},
		{"IDN upper case", "BÜCHER.Example", "xn--bcher-kva.example"},
		{"IDN wildcard", "*.bücher.example", "*.xn--bcher-kva.example"},
		{"A-label", "xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"A-label upper case", "XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"},
		{"IDN TLD", "пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f"},
		{"Greek upper case mapped", "ΑΒΓ.example", "xn--mxacd.example"},
		{"Japanese", "日本語.jp", "xn--wgv71a119e.jp"},
		{"katakana middle dot", "ドメイン・テスト.jp", "xn--eckzbwbjb8l5esc.jp"},
		{"Catalan middle dot", "l·l.example", "xn--ll-0ea.example"},
		{"sharp s non-transitional", "straße.example", "xn--strae-oqa.example"},
		{"final sigma non-transitional", "xn--zca.example", "xn--zca.example"},
		{"full-width ASCII mapped", "ＥＸＡＭＰＬＥ.com", "example.com"},
		{"right-to-left label", "xn--mgbh0a.example", "xn--mgbh0a.example"},
		{"right-to-left TLD", "ab.xn--ngbrx", "ab.xn--ngbrx"},
		{"hyphens elsewhere", "a-b--c.example", "a-b--c.example"},
		{"ASCII", "shop-24.example.com", "shop-24.example.com"},
		{"German IDN", "bücher.de", "xn--bcher-kva.de"},
		{"German IDN A-label", "xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"Japanese Han, Hiragana, Katakana and Latin", "日本語テストひらがなabc.jp", "xn--abc-o73b4fvb9j6o0dva8760mehdm06m.jp"},
		{"Japanese A-label", "xn--abc-o73b4fvb9j6o0dva8760mehdm06m.jp", "xn--abc-o73b4fvb9j6o0dva8760mehdm06m.jp"},
		{"half-width Katakana mapped", "ﾃｽﾄ.jp", "xn--zckzah.jp"},
		{"Katakana prolonged sound mark (Common)", "ラーメン.jp", "xn--4dkp5a8a.jp"},
		{"Chinese Han and Bopomofo", "中文ㄅㄆ.tw", "xn--5ekc105thxu.tw"},
		{"Korean Hangul, Han and Latin", "한국韓國abc.kr", "xn--abc-9l6el570a8c1auo2d.kr"},
		{"Greek and digits", "αβγ123.gr", "xn--123-nxcfg.gr"},
		{"Cyrillic and digits", "пример-1.рф", "xn---1-mlcluqhd.xn--p1ai"},
		{"Cyrillic and combining marks (Inherited)", "\u0430\u0301\u0300.com", "xn--ksab22g.com"},
		{"Thai", "ไทย.com", "xn--o3cw4h.com"},
		{"scripts differ between labels", "пример.example.com", "xn--e1afmkfd.example.com"},
		// Whole-script confusables are beyond the mixed-script rule: this
		// is Cyrillic throughout.
		{"whole-script confusable", "аррӏе.com", "xn--80ak6aa92e.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allowTesting.Normalize(tt.in)
			if err != nil {
				t.Fatalf("Normalize(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again, err := allowTesting.Normalize(got); err != nil || again != got {
				t.Errorf("Normalize(%q) = %q, %v, want %q (idempotent)", got, again, err, got)
			}
		})
	}
}

func TestNormalizePolicy(t *testing.T) {
	tests := []struct {
		in         string
		want       string // when the testing TLDs are allowed
		strictCode string // "" when the strict policy gives want as well
	}{
		{"blog.customer.example", "blog.customer.example", CodeReserved},
		{"Blog.Customer.EXAMPLE.", "blog.customer.example", CodeReserved},
		{"*.customer.example", "*.customer.example", CodeReserved},
		{"app.test", "app.test", CodeReserved},
		{"bücher.example", "xn--bcher-kva.example", CodeReserved},
		{"xn--bcher-kva.test", "xn--bcher-kva.test", CodeReserved},
		{"example.com", "example.com", ""},
		{"test.example.com", "test.example.com", ""},
		{"example.org", "example.org", ""},
		{"my.test.net", "my.test.net", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got, err := allowTesting.Normalize(tt.in); err != nil || got != tt.want {
				t.Errorf("%+v.Normalize(%q) = %q, %v, want %q", allowTesting, tt.in, got, err, tt.want)
			}
			for _, normalize := range []func(string) (string, error){Policy{}.Normalize, Normalize} {
				got, err := normalize(tt.in)
				if tt.strictCode == "" {
					if err != nil || got != tt.want {
						t.Errorf("strict Normalize(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
					}
					continue
				}
				var de *Error
				if !errors.As(err, &de) || de.Code != tt.strictCode {
					t.Fatalf("strict Normalize(%q) = %q, %v, want code %q", tt.in, got, err, tt.strictCode)
				}
				checkError(t, tt.in, de)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code string
	}{
		{"empty", "", CodeEmpty},
		{"only a dot", ".", CodeEmpty},
		{"overlong input", strings.Repeat("a", MaxInputLength+1), CodeTooLong},
		{"254 characters", strings.Repeat("abcdefgh.", 27) + "abcdefghijk", CodeTooLong},
		{"wildcard makes it 254", "*." + strings.Repeat("abcdefgh.", 27) + "abcdefghi", CodeTooLong},
		{"IDN too long in ASCII", strings.Repeat("ü.", 85) + "example", CodeTooLong},
		{"label of 64", strings.Repeat("a", 64) + ".example", CodeLabelTooLong},
		{"IDN label too long in ASCII", strings.Repeat("ü", 60) + ".example", CodeLabelTooLong},
		{"two trailing dots", "example.com..", CodeEmptyLabel},
		{"leading dot", ".example.com", CodeEmptyLabel},
		{"double dot", "a..example", CodeEmptyLabel},
		{"ideographic full stop", "example.com\u3002", CodeEmptyLabel},
		{"space", "exa mple.com", CodeInvalidCharacter},
		{"leading space", " example.com", CodeInvalidCharacter},
		{"NUL", "exa\x00mple.com", CodeInvalidCharacter},
		{"DEL", "exa\x7fmple.com", CodeInvalidCharacter},
		{"newline", "example.com\n", CodeInvalidCharacter},
		{"C1 control", "exa\u0085mple.com", CodeInvalidCharacter},
		{"no-break space", "exa\u00a0mple.com", CodeInvalidCharacter},
		{"invalid UTF-8", "exa\xffmple.com", CodeInvalidCharacter},
		{"truncated UTF-8", "b\xc3cher.example", CodeInvalidCharacter},
		{"underscore", "_acme-challenge.example.com", CodeInvalidCharacter},
		{"URL", "https://example.com/", CodeInvalidCharacter},
		{"port", "example.com:443", CodeInvalidCharacter},
		{"leading hyphen", "-a.example", CodeInvalidHyphen},
		{"trailing hyphen", "a-.example", CodeInvalidHyphen},
		{"reserved hyphens", "ab--c.example", CodeInvalidHyphen},
		{"IDN leading hyphen", "-bücher.example", CodeInvalidHyphen},
		{"A-label trailing hyphen", "xn--bcher-kva-.example", CodeInvalidHyphen},
		{"bad punycode", "xn--a.example", CodeInvalidIDN},
		{"IDNA2008 symbol", "xn--zz-zzz.example", CodeInvalidIDN},
		{"emoji A-label", "xn--n3h.example", CodeInvalidIDN},
		{"emoji", "☃.example", CodeInvalidIDN},
		{"disallowed U+2488", "\u2488.example", CodeInvalidIDN},
		{"bidi override", "exa\u202emple.com", CodeInvisibleCharacter},
		{"zero width joiner", "a\u200db.example", CodeInvisibleCharacter},
		{"zero width space", "ex\u200bample.com", CodeInvisibleCharacter},
		{"zero width space in wildcard", "*.ex\u200bample.com", CodeInvisibleCharacter},
		{"soft hyphen", "ex\u00adample.com", CodeInvisibleCharacter},
		{"zero width non-joiner", "a\u200cb.example", CodeInvisibleCharacter},
		{"left-to-right mark", "example.com\u200e", CodeInvisibleCharacter},
		{"right-to-left mark", "\u200fexample.com", CodeInvisibleCharacter},
		{"left-to-right embedding", "exa\u202ample.com", CodeInvisibleCharacter},
		{"word joiner", "exa\u2060mple.com", CodeInvisibleCharacter},
		{"invisible plus", "exa\u2064mple.com", CodeInvisibleCharacter},
		{"left-to-right isolate", "exa\u2066mple.com", CodeInvisibleCharacter},
		{"pop directional isolate", "exa\u2069mple.com", CodeInvisibleCharacter},
		{"byte order mark", "\ufeffexample.com", CodeInvisibleCharacter},
		{"Mongolian vowel separator", "exa\u180emple.com", CodeInvisibleCharacter},
		{"combining grapheme joiner", "exa\u034fmple.com", CodeInvisibleCharacter},
		{"variation selector 1", "exa\ufe00mple.com", CodeInvisibleCharacter},
		{"variation selector 16", "love\ufe0f.com", CodeInvisibleCharacter},
		{"variation selector 17", "exa\U000e0100mple.com", CodeInvisibleCharacter},
		{"variation selector 256", "exa\U000e01efmple.com", CodeInvisibleCharacter},
		{"language tag", "exa\U000e0001mple.com", CodeInvisibleCharacter},
		{"tag letter", "exa\U000e0061mple.com", CodeInvisibleCharacter},
		{"cancel tag", "exa\U000e007fmple.com", CodeInvisibleCharacter},
		{"Arabic letter mark (Cf)", "exa\u061cmple.com", CodeInvisibleCharacter},
		{"Hangul filler (default ignorable)", "\u3164.com", CodeInvisibleCharacter},
		{"invisible next to a bad label", "-a\u200b.example", CodeInvisibleCharacter},
		{"A-label of soft hyphen", "xn--ab-5da.com", CodeInvisibleCharacter},
		{"A-label of zero width space", "xn--ab-g1t.com", CodeInvisibleCharacter},
		{"A-label of ZWNJ out of context", "xn--ab-j1t.com", CodeInvisibleCharacter},
		{"A-label of ZWJ in context", "xn--11b2ezcw70k.in", CodeInvisibleCharacter},
		{"Latin and Cyrillic", "ex\u0430mple.com", CodeMixedScript},
		{"Latin and Cyrillic A-label", "xn--exmple-4nf.com", CodeMixedScript},
		{"Latin and Cyrillic A-label upper case", "XN--EXMPLE-4NF.com", CodeMixedScript},
		{"Cyrillic and Latin", "\u0440\u0430\u0443\u0440\u0430l.com", CodeMixedScript},
		{"Latin and Greek", "g\u03bf\u03bfgle.com", CodeMixedScript},
		{"Greek and Cyrillic", "\u03b1\u03b2\u03b3\u0430.com", CodeMixedScript},
		{"mixed second label", "www.ex\u0430mple.com", CodeMixedScript},
		{"mixed TLD", "example.c\u043em", CodeMixedScript},
		{"mixed wildcard base", "*.ex\u0430mple.com", CodeMixedScript},
		{"Latin and Devanagari", "abc\u0915.com", CodeMixedScript},
		{"Thai and Latin", "\u0e44\u0e17\u0e22abc.com", CodeMixedScript},
		{"Hangul and Hiragana", "\ud55c\uad6d\u3072\u3089.com", CodeMixedScript},
		{"Bopomofo and Katakana", "\u3105\u3106\u30ab\u30bf.com", CodeMixedScript},
		{"Han, Bopomofo and Hangul", "\u4e2d\u6587\u3105\u3106\ud55c\uad6d.com", CodeMixedScript},
		{"bidi rule in label", "\u05d0a.example", CodeInvalidIDN},
		{"bidi rule across labels", "1ab.xn--ngbrx", CodeInvalidIDN},
		{"middle dot out of context", "a·b.example", CodeInvalidIDN},
		{"fake A-label", "xn--ab.example", CodeInvalidIDN},
		{"IPv4", "192.0.2.1", CodeIPLiteral},
		{"IPv4 trailing dot", "192.0.2.1.", CodeIPLiteral},
		{"short IPv4", "127.1", CodeIPLiteral},
		{"hex IPv4", "0x7f.0.0.0x1", CodeIPLiteral},
		{"IPv6", "2001:db8::1", CodeIPLiteral},
		{"bracketed IPv6", "[2001:db8::1]", CodeIPLiteral},
		{"IPv6 with zone", "fe80::1%eth0", CodeIPLiteral},
		{"full-width IPv4", "１９２.０.２.１", CodeIPLiteral},
		{"single label", "example", CodeSingleLabel},
		{"single A-label", "xn--bcher-kva", CodeSingleLabel},
		{"localhost", "localhost", CodeReserved},
		{"under localhost", "app.localhost", CodeReserved},
		{"local", "printer.local", CodeReserved},
		{"internal", "db.internal", CodeReserved},
		{"invalid", "x.invalid", CodeReserved},
		{"arpa", "1.0.0.127.in-addr.arpa", CodeReserved},
		{"home.arpa", "router.home.arpa", CodeReserved},
		{"onion", "abc.onion", CodeReserved},
		{"alt", "foo.alt", CodeReserved},
		{"under alt", "a.b.ALT.", CodeReserved},
		{"lan", "nas.lan", CodeReserved},
		{"corp", "mail.corp", CodeReserved},
		{"home", "tv.home", CodeReserved},
		{"wildcard under reserved", "*.localhost", CodeReserved},
		{"co.uk", "co.uk", CodePublicSuffix},
		{"CO.UK.", "CO.UK.", CodePublicSuffix},
		{"private suffix", "github.io", CodePublicSuffix},
		{"bare star", "*", CodeInvalidWildcard},
		{"star dot", "*.", CodeInvalidWildcard},
		{"wildcard over TLD", "*.com", CodeInvalidWildcard},
		{"wildcard over public suffix", "*.co.uk", CodeInvalidWildcard},
		{"wildcard over private suffix", "*.github.io", CodeInvalidWildcard},
		{"double wildcard", "*.*.example.com", CodeInvalidWildcard},
		{"partial wildcard", "a*.example.com", CodeInvalidWildcard},
		{"inner wildcard", "foo.*.example.com", CodeInvalidWildcard},
		{"wildcard without dot", "*example.com", CodeInvalidWildcard},
	}
	for _, pp := range policies {
		for _, tt := range tests {
			t.Run(pp.name+"/"+tt.name, func(t *testing.T) {
				got, err := pp.policy.Normalize(tt.in)
				if err == nil {
					t.Fatalf("Normalize(%q) = %q, want error %q", tt.in, got, tt.code)
				}
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("Normalize(%q) error = %T %v, want *Error", tt.in, err, err)
				}
				if de.Code != tt.code {
					t.Errorf("Normalize(%q) code = %q (%s), want %q", tt.in, de.Code, de.Message, tt.code)
				}
				checkError(t, tt.in, de)
			})
		}
	}
}

// TestErrorMessages checks that the new rejections say what is wrong and
// where.
func TestErrorMessages(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"ex\u200bample.com", []string{`"ex\u200bample.com"`, "U+200B", "byte 2"}},
		{"exa\ufe0fmple.com", []string{`"exa\ufe0fmple.com"`, "U+FE0F"}},
		{"xn--ab-j1t.com", []string{`"xn--ab-j1t"`, "U+200C"}},
		{"xn--11b2ezcw70k.in", []string{"U+200D"}},
		{"ex\u0430mple.com", []string{"label \"ex\u0430mple\"", "mixes Latin and Cyrillic", "U+0430"}},
		{"xn--exmple-4nf.com", []string{"label \"ex\u0430mple\"", `"xn--exmple-4nf.com"`, "mixes Latin and Cyrillic"}},
		{"\u03b1\u03b2\u03b3\u0430a.com", []string{"mixes Greek, Cyrillic and Latin"}},
		{"blog.customer.example", []string{`".example"`, "testing"}},
		{"foo.alt", []string{`".alt"`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Normalize(tt.in)
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("Normalize(%q) error = %v, want *Error", tt.in, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(de.Message, w) {
					t.Errorf("Normalize(%q) message = %q, want it to mention %s", tt.in, de.Message, w)
				}
			}
		})
	}
}

// checkError verifies the properties every *Error has: a name that is the
// input (or a prefix of an overlong one) and a message that is printable.
func checkError(t *testing.T, in string, e *Error) {
	t.Helper()
	if e.Code == "" || e.Message == "" {
		t.Errorf("Normalize(%q) error = %+v, want Code and Message", in, e)
	}
	if e.Error() != e.Message {
		t.Errorf("Normalize(%q) Error() = %q, want Message %q", in, e.Error(), e.Message)
	}
	if !strings.HasPrefix(in, e.Name) || len(e.Name) > maxQuoted && e.Name != in {
		t.Errorf("Normalize(%q) Name = %q, want the input or a prefix of at most %d bytes", in, e.Name, maxQuoted)
	}
	if !utf8.ValidString(e.Message) {
		t.Errorf("Normalize(%q) Message %q is not valid UTF-8", in, e.Message)
	}
	for _, r := range e.Message {
		if !unicode.IsPrint(r) {
			t.Errorf("Normalize(%q) Message %q contains unescaped %U", in, e.Message, r)
			break
		}
	}
}

type badName struct {
	Name string `json:"name"`
	Code string `json:"code"`
}

// TestBadNamesCorpus checks the shared fixture that the API tests reuse.
func TestBadNamesCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/bad_names.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus []badName
	if err := json.Unmarshal(data, &corpus); err != nil {
		t.Fatalf("parse bad_names.json: %v", err)
	}
	if len(corpus) < 50 {
		t.Errorf("bad_names.json has %d names, want at least 50", len(corpus))
	}
	// Every deployment refuses these names with the same code: the API
	// tests run the corpus with the testing TLDs allowed.
	seen := map[string]bool{}
	for _, pp := range policies {
		for i, c := range corpus {
			t.Run(fmt.Sprint(pp.name, "/", i), func(t *testing.T) {
				seen[c.Code] = true
				got, err := pp.policy.Normalize(c.Name)
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("Normalize(%q) = %q, %v, want *Error %q", c.Name, got, err, c.Code)
				}
				if de.Code != c.Code {
					t.Errorf("Normalize(%q) code = %q (%s), want %q", c.Name, de.Code, de.Message, c.Code)
				}
				checkError(t, c.Name, de)
			})
		}
	}
	for _, code := range []string{CodeEmpty, CodeTooLong, CodeLabelTooLong, CodeEmptyLabel, CodeInvalidCharacter,
		CodeInvisibleCharacter, CodeInvalidHyphen, CodeInvalidIDN, CodeMixedScript, CodeIPLiteral, CodeSingleLabel,
		CodeReserved, CodePublicSuffix, CodeInvalidWildcard} {
		if !seen[code] {
			t.Errorf("bad_names.json has no name with code %q", code)
		}
	}
}

func TestIsWildcard(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"*.example.com", true},
		{"example.com", false},
		{"a*.example.com", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := IsWildcard(tt.in); got != tt.want {
				t.Errorf("IsWildcard(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestWildcardParent(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"a.b.example", "*.b.example", true},
		{"www.example.com", "*.example.com", true},
		{"x.y.z.example.com", "*.y.z.example.com", true},
		{"example.com", "", false},   // *.com covers a TLD
		{"shop.co.uk", "", false},    // *.co.uk covers a public suffix
		{"foo.github.io", "", false}, // *.github.io covers a private suffix
		{"a.foo.github.io", "*.foo.github.io", true},
		{"*.example.com", "", false},
		{"com", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := WildcardParent(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WildcardParent(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNormalizeAll(t *testing.T) {
	many := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("n%03d.example.com", i)
		}
		return s
	}
	tests := []struct {
		name     string
		primary  string
		sans     []string
		wantP    string
		wantSANs []string
		wantCode string
	}{
		{name: "no SANs", primary: "Example.com.", sans: nil, wantP: "example.com", wantSANs: []string{}},
		{
			name:     "dedup, drop primary, sort",
			primary:  "www.example.com",
			sans:     []string{"WWW.example.com", "b.example.com", "a.example.com", "B.Example.Com.", "bücher.example", "xn--bcher-kva.example"},
			wantP:    "www.example.com",
			wantSANs: []string{"a.example.com", "b.example.com", "xn--bcher-kva.example"},
		},
		{name: "wildcard and apex", primary: "example.com", sans: []string{"*.example.com"}, wantP: "example.com", wantSANs: []string{"*.example.com"}},
		{name: "99 SANs", primary: "example.com", sans: many(99), wantP: "example.com", wantSANs: many(99)},
		{name: "99 SANs plus duplicates", primary: "example.com", sans: append(many(99), "N000.example.com", "example.com"), wantP: "example.com", wantSANs: many(99)},
		{name: "100 SANs", primary: "example.com", sans: many(100), wantCode: CodeTooManyNames},
		{name: "bad primary", primary: "localhost", wantCode: CodeReserved},
		{name: "bad SAN", primary: "example.com", sans: []string{"ok.example.com", "1.2.3.4"}, wantCode: CodeIPLiteral},
		{name: "invisible SAN", primary: "example.com", sans: []string{"ok.example.com", "ok\u200b.example.com"}, wantCode: CodeInvisibleCharacter},
		{name: "mixed-script SAN", primary: "example.com", sans: []string{"ex\u0430mple.example.com"}, wantCode: CodeMixedScript},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, sans, err := allowTesting.NormalizeAll(tt.primary, tt.sans)
			if tt.wantCode != "" {
				var de *Error
				if !errors.As(err, &de) || de.Code != tt.wantCode {
					t.Fatalf("NormalizeAll(%q, %q) error = %v, want code %q", tt.primary, tt.sans, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeAll(%q, %q) error = %v", tt.primary, tt.sans, err)
			}
			if p != tt.wantP || sans == nil || !slices.Equal(sans, tt.wantSANs) {
				t.Errorf("NormalizeAll(%q, %q) = %q, %q, want %q, %q", tt.primary, tt.sans, p, sans, tt.wantP, tt.wantSANs)
			}
		})
	}
}

func TestNormalizeAllStrict(t *testing.T) {
	tests := []struct {
		primary string
		sans    []string
	}{
		{"blog.customer.example", nil},
		{"example.com", []string{"www.example.com", "www.customer.example"}},
		{"example.com", []string{"app.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.primary, func(t *testing.T) {
			p, sans, err := NormalizeAll(tt.primary, tt.sans)
			var de *Error
			if !errors.As(err, &de) || de.Code != CodeReserved {
				t.Fatalf("NormalizeAll(%q, %q) = %q, %q, %v, want code %q", tt.primary, tt.sans, p, sans, err, CodeReserved)
			}
			if _, _, err := allowTesting.NormalizeAll(tt.primary, tt.sans); err != nil {
				t.Errorf("%+v.NormalizeAll(%q, %q) error = %v", allowTesting, tt.primary, tt.sans, err)
			}
		})
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"example.com", "WWW.Example.COM.", "*.example.com", "bücher.example", "xn--bcher-kva.example",
		"xn--a.example", "xn--zz-zzz.example", "1.2.3.4", "[::1]", "a..b", "ドメイン・テスト.jp", "l·l.example",
		"ab.xn--ngbrx", "ＥＸＡＭＰＬＥ.com", "straße.example", "co.uk", "*.co.uk", "-a.example",
		"ex\u200bample.com", "exаmple.com", "xn--exmple-4nf.com", "日本語テストひらがなabc.jp", "аррӏе.com", "app.test",
	} {
		f.Add(s)
	}
	if data, err := os.ReadFile("testdata/bad_names.json"); err == nil {
		var corpus []badName
		if json.Unmarshal(data, &corpus) == nil {
			for _, c := range corpus {
				f.Add(c.Name)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		strict, strictErr := Normalize(in)
		out, err := allowTesting.Normalize(in)
		// The policy only adds names: what strict accepts, it accepts
		// alike; what it refuses, strict refuses with the same code.
		if strictErr == nil && (err != nil || out != strict) {
			t.Fatalf("Normalize(%q) = %q but %+v.Normalize = %q, %v", in, strict, allowTesting, out, err)
		}
		if err != nil {
			var de, strictDE *Error
			if !errors.As(err, &de) {
				t.Fatalf("Normalize(%q) error = %T %v, want *Error", in, err, err)
			}
			checkError(t, in, de)
			if !errors.As(strictErr, &strictDE) || strictDE.Code != de.Code {
				t.Fatalf("Normalize(%q) error = %v, want code %q as with %+v", in, strictErr, de.Code, allowTesting)
			}
			return
		}
		if strictErr != nil {
			var de *Error
			if !errors.As(strictErr, &de) || de.Code != CodeReserved {
				t.Fatalf("Normalize(%q) error = %v, want code %q or %q", in, strictErr, CodeReserved, out)
			}
			checkError(t, in, de)
		}
		// Nothing invisible is dropped on the way: such input is refused.
		if i := strings.IndexFunc(in, func(r rune) bool {
			return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
		}); i >= 0 {
			t.Fatalf("Normalize(%q) = %q, want an error for the invisible character at byte %d", in, out, i)
		}
		if len(out) == 0 || len(out) > MaxNameLength {
			t.Fatalf("Normalize(%q) = %q: length %d outside 1..%d", in, out, len(out), MaxNameLength)
		}
		for i := 0; i < len(out); i++ {
			c := out[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '*') {
				t.Fatalf("Normalize(%q) = %q: byte %q is not lower-case ASCII LDH", in, out, c)
			}
		}
		if strings.Contains(strings.TrimPrefix(out, "*."), "*") {
			t.Fatalf("Normalize(%q) = %q: misplaced wildcard", in, out)
		}
		again, err := allowTesting.Normalize(out)
		if err != nil || again != out {
			t.Fatalf("Normalize(%q) = %q, %v, want %q (idempotent; input %q)", out, again, err, out, in)
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	for _, bb := range []struct{ name, in string }{
		{"ascii", "blog.customer.example"},
		{"ascii-mixed-case-trailing-dot", "Blog.Customer.Example."},
		{"wildcard", "*.customer.example.co.uk"},
		{"a-label", "xn--bcher-kva.example"},
		{"unicode", "bücher.example"},
		{"unicode-japanese", "日本語テストひらがなabc.jp"},
		{"unicode-thai", "ไทย.com"},
		{"rejected", "a..example"},
		{"rejected-mixed-script", "exаmple.com"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = allowTesting.Normalize(bb.in)
			}
		})
	}
}
