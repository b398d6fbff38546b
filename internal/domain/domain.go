// Package domain normalises and validates every domain name that enters
// certflow: the primary name and SANs of certificate requests, SNI lookups in
// the delivery function and names read back from the table.
//
// A normalised name is ASCII, lower case, has no trailing dot, uses the
// A-label (punycode) form for internationalised labels, and is a name a
// public CA can issue for: at least two labels, not an IP address, not under
// a reserved suffix such as .local or .internal, and not itself a public
// suffix such as co.uk or github.io. A wildcard is allowed only as the whole
// leftmost label ("*.example.com") and never directly over a public suffix.
// Names that could be shown as a different name are refused too: invisible
// and text-direction characters anywhere, and labels mixing scripts.
//
// The testing suffixes .test and .example are refused unless a Policy
// allows them: the offline stack and the tests issue certificates for names
// such as blog.customer.example.
package domain

import (
	"net/netip"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

const (
	// MaxInputLength is the size in bytes above which input is rejected
	// before any other processing.
	MaxInputLength = 1024
	// MaxNameLength is the longest normalised name in bytes (RFC 1035
	// presentation form without the trailing dot).
	MaxNameLength = 253
	// MaxLabelLength is the longest label in bytes.
	MaxLabelLength = 63
	// MaxSANs is how many names a certificate may carry besides its primary
	// name (Let's Encrypt allows 100 names per certificate).
	MaxSANs = 99
)

// EnvAllowTestingTLDs is the environment variable that sets
// Policy.AllowTestingTLDs in the functions that take names ("true" or
// "false"; unset means false). The offline stack sets it to "true"; a
// deployment to AWS leaves it false. The composition root reads it once.
const EnvAllowTestingTLDs = "CERTFLOW_ALLOW_TESTING_TLDS"

// Policy holds what a deployment accepts beyond the names a public CA issues
// for. The zero value is strict and is what Normalize and NormalizeAll
// apply.
type Policy struct {
	// AllowTestingTLDs accepts names under .test and .example, which
	// RFC 2606 reserves for testing: the offline stack and the tests issue
	// certificates for them from a test CA. The other reserved suffixes
	// (.localhost, .invalid, .local, .onion, .alt, .internal, ...) are
	// refused whatever the policy: no deployment needs them.
	AllowTestingTLDs bool
}

// Normalize is Policy{}.Normalize: it refuses names under .test and .example.
func Normalize(name string) (string, error) {
	return Policy{}.Normalize(name)
}

// NormalizeAll is Policy{}.NormalizeAll: it refuses names under .test and
// .example.
func NormalizeAll(primary string, sans []string) (string, []string, error) {
	return Policy{}.NormalizeAll(primary, sans)
}

// Normalize returns the canonical form of name or an *Error saying why name
// cannot be used. Apart from removing a single trailing dot it never drops
// characters: leading or embedded spaces, control characters, invisible
// characters and empty labels are errors, not things to tidy up.
//
// Internationalised names are converted with UTS #46 non-transitional lookup
// mapping and validated against IDNA2008 (disallowed code points, hyphen and
// joiner rules, the bidi rule); existing "xn--" labels must decode to a valid
// label and re-encode to exactly themselves. Every internationalised label,
// given in Unicode or as an "xn--" label, must then be free of invisible
// characters and written in one script, or in Latin with Han and kana, with
// Han and Bopomofo, or with Han and Hangul (UTS #39 "highly restrictive",
// simplified).
//
// Normalize is idempotent: p.Normalize(n) returns n for every n it returned.
func (p Policy) Normalize(name string) (string, error) {
	if name == "" {
		return "", newError(CodeEmpty, name, "domain name is empty")
	}
	if len(name) > MaxInputLength {
		return "", newError(CodeTooLong, truncate(name),
			"domain name starting with %q is %d bytes long; the limit is %d", truncate(name), len(name), MaxNameLength)
	}
	s := strings.TrimSuffix(name, ".")
	if s == "" {
		return "", newError(CodeEmpty, name, "domain name %q has no labels", name)
	}
	if isIPLiteral(s) {
		return "", newError(CodeIPLiteral, name,
			"%q is an IP address; certificates are issued for domain names only", name)
	}
	ascii, err := checkCharacters(name, s)
	if err != nil {
		return "", err
	}

	base, wildcard := strings.CutPrefix(s, "*.")
	if strings.Contains(base, "*") || base == "" {
		return "", newError(CodeInvalidWildcard, name,
			`domain name %q uses "*" other than as the whole leftmost label, as in "*.example.com"`, name)
	}
	if ascii {
		base = strings.ToLower(base)
	} else {
		a, err := convertProfile().ToASCII(base)
		if err != nil {
			return "", newError(CodeInvalidIDN, name,
				"domain name %q is not a valid internationalized domain name: it contains characters IDNA2008 disallows, breaks the joiner rules or mixes right-to-left and left-to-right text", name)
		}
		base = a
	}
	if err := checkLabels(name, base); err != nil {
		return "", err
	}

	full := base
	if wildcard {
		full = "*." + base
	}
	if len(full) > MaxNameLength {
		return "", newError(CodeTooLong, truncate(name),
			"domain name starting with %q is %d characters long in ASCII form; the limit is %d", truncate(name), len(full), MaxNameLength)
	}
	tld := base[strings.LastIndexByte(base, '.')+1:]
	if isNumericLabel(tld) {
		return "", newError(CodeIPLiteral, name,
			"%q looks like an IP address (its last label %q is numeric); certificates are issued for domain names only", name, tld)
	}
	if isReservedTLD(tld) {
		return "", newError(CodeReserved, name,
			"domain name %q is under the reserved suffix %q and cannot get a publicly trusted certificate", name, "."+tld)
	}
	if !strings.Contains(base, ".") {
		if wildcard {
			return "", newError(CodeInvalidWildcard, name,
				"wildcard %q would cover a whole top-level domain", name)
		}
		return "", newError(CodeSingleLabel, name,
			"domain name %q has a single label; certificates need a fully qualified name such as \"www.example.com\"", name)
	}
	if ps, _ := publicsuffix.PublicSuffix(base); ps == base {
		if wildcard {
			return "", newError(CodeInvalidWildcard, name,
				"wildcard %q would cover the public suffix %q, whose names belong to different owners", name, base)
		}
		return "", newError(CodePublicSuffix, name,
			"domain name %q is a public suffix, under which different owners register names; request a name under it instead", name)
	}
	// Last, so that a name wrong on every deployment gets the same code
	// whatever the policy (the shared bad_names.json relies on it).
	if isTestingTLD(tld) && !p.AllowTestingTLDs {
		return "", newError(CodeReserved, name,
			"domain name %q is under %q, which is reserved for testing (RFC 2606) and not allowed in this deployment", name, "."+tld)
	}
	return full, nil
}

// IsWildcard reports whether name is a wildcard name ("*.example.com").
func IsWildcard(name string) bool {
	return strings.HasPrefix(name, "*.")
}

// WildcardParent returns the wildcard name that would cover the normalised
// name one label up ("a.b.example" gives "*.b.example"). It reports false when
// name is itself a wildcard or when the wildcard would sit directly over a
// public suffix or a single label, since no such certificate can exist.
func WildcardParent(name string) (string, bool) {
	if IsWildcard(name) {
		return "", false
	}
	_, parent, ok := strings.Cut(name, ".")
	if !ok || !strings.Contains(parent, ".") {
		return "", false
	}
	if ps, _ := publicsuffix.PublicSuffix(parent); ps == parent {
		return "", false
	}
	return "*." + parent, true
}

// NormalizeAll normalises the primary name and the SANs of one certificate.
// The returned SANs are deduplicated, exclude the primary name and are
// sorted; the slice is never nil. The first invalid name fails the whole
// call with that name's *Error; more than MaxSANs distinct SANs fail with
// CodeTooManyNames.
func (p Policy) NormalizeAll(primary string, sans []string) (string, []string, error) {
	first, err := p.Normalize(primary)
	if err != nil {
		return "", nil, err
	}
	seen := make(map[string]struct{}, min(len(sans), MaxSANs))
	out := make([]string, 0, min(len(sans), MaxSANs))
	for _, san := range sans {
		n, err := p.Normalize(san)
		if err != nil {
			return "", nil, err
		}
		if _, dup := seen[n]; dup || n == first {
			continue
		}
		if len(out) == MaxSANs {
			return "", nil, newError(CodeTooManyNames, primary,
				"certificate for %q has more than %d additional names; the limit is %d", primary, MaxSANs, MaxSANs)
		}
		seen[n] = struct{}{}
		out = append(out, n)
	}
	slices.Sort(out)
	return first, out, nil
}

// checkCharacters rejects invalid UTF-8, control characters, white space,
// invisible characters and ASCII punctuation other than '.', '-' and '*'. It
// runs before any mapping, which would delete most invisible characters. It
// reports whether s is entirely ASCII.
func checkCharacters(name, s string) (ascii bool, err error) {
	ascii = true
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !isLDH(c) && c != '.' && c != '*' {
				return false, newError(CodeInvalidCharacter, name,
					"domain name %q contains %q at byte %d; only letters, digits, hyphens and dots are allowed", name, rune(c), i)
			}
			i++
			continue
		}
		ascii = false
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false, newError(CodeInvalidCharacter, name,
				"domain name %q is not valid UTF-8 (byte %d)", name, i)
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false, newError(CodeInvalidCharacter, name,
				"domain name %q contains %q at byte %d; spaces and control characters are not allowed", name, r, i)
		}
		if isInvisible(r) {
			// %+q: some invisible characters are marks or letters that
			// %q would leave as they are, unseen.
			return false, newError(CodeInvisibleCharacter, name,
				"domain name %+q contains the invisible character %U at byte %d; zero-width, joiner, bidi-control, variation-selector and other format characters are refused, never removed", name, r, i)
		}
		i += size
	}
	return ascii, nil
}

// checkLabels validates the labels of base, a lower-case ASCII name without
// wildcard prefix or trailing dot.
func checkLabels(name, base string) error {
	hasALabel := false
	for label := range strings.SplitSeq(base, ".") {
		switch {
		case label == "":
			return newError(CodeEmptyLabel, name, "domain name %q has an empty label (two dots in a row, or a leading dot)", name)
		case len(label) > MaxLabelLength:
			return newError(CodeLabelTooLong, truncate(name),
				"domain name starting with %q has a label of %d characters; the limit is %d", truncate(name), len(label), MaxLabelLength)
		}
		for i := 0; i < len(label); i++ {
			if !isLDH(label[i]) {
				return newError(CodeInvalidCharacter, name,
					"label %q in domain name %q contains %q; only letters, digits and hyphens are allowed", label, name, rune(label[i]))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return newError(CodeInvalidHyphen, name,
				"label %q in domain name %q starts or ends with a hyphen", label, name)
		}
		if len(label) >= 4 && label[2] == '-' && label[3] == '-' {
			if !strings.HasPrefix(label, "xn--") {
				return newError(CodeInvalidHyphen, name,
					`label %q in domain name %q has hyphens in the third and fourth positions, which are reserved for internationalized labels ("xn--")`, label, name)
			}
			hasALabel = true
		}
	}
	if hasALabel {
		return checkALabels(name, base)
	}
	return nil
}

// checkALabels verifies that every "xn--" label of base decodes to a valid
// IDNA2008 label and re-encodes to exactly itself, that the name as a whole
// satisfies the bidi rule, and that the decoded labels pass checkULabel.
func checkALabels(name, base string) error {
	p := strictProfile()
	if u, err := p.ToUnicode(base); err == nil {
		if a, err := p.ToASCII(u); err == nil && a == base {
			for label := range strings.SplitSeq(u, ".") {
				if err := checkULabel(name, label); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// Something is wrong: find the label to blame so the message is useful.
	for label := range strings.SplitSeq(base, ".") {
		if !strings.HasPrefix(label, "xn--") {
			continue
		}
		raw, err := idna.Punycode.ToUnicode(label)
		if err != nil {
			return newError(CodeInvalidIDN, name,
				"label %q in domain name %q is not valid punycode", label, name)
		}
		if r := findInvisible(raw); r >= 0 {
			return newError(CodeInvisibleCharacter, name,
				"label %q in domain name %q decodes to %+q, which contains the invisible character %U", label, name, raw, r)
		}
		u, err := p.ToUnicode(label)
		if err != nil {
			if raw != "" && (strings.HasPrefix(raw, "-") || strings.HasSuffix(raw, "-") ||
				len(raw) >= 4 && raw[2:4] == "--") {
				return newError(CodeInvalidHyphen, name,
					"label %q (%q) in domain name %q starts or ends with a hyphen or has hyphens in the third and fourth positions", label, raw, name)
			}
			return newError(CodeInvalidIDN, name,
				"label %q (%q) in domain name %q is not a valid internationalized label: it contains characters IDNA2008 disallows, is not in normalization form C, breaks the joiner rules or mixes text directions", label, raw, name)
		}
		if a, err := p.ToASCII(u); err != nil || a != label {
			return newError(CodeInvalidIDN, name,
				"label %q in domain name %q is not the canonical ASCII form of %q", label, name, u)
		}
	}
	return newError(CodeInvalidIDN, name,
		"domain name %q mixes right-to-left and left-to-right labels in a way the bidi rule (RFC 5893) forbids", name)
}

// checkULabel checks a decoded label for what IDNA leaves to us: the
// joiners it allows in context (invisible all the same), the IDNA2008 code
// point rules and mixed scripts.
func checkULabel(name, label string) error {
	if r := findInvisible(label); r >= 0 {
		return newError(CodeInvisibleCharacter, name,
			"label %+q in domain name %+q contains the invisible character %U", label, name, r)
	}
	if problem := idna2008Problem(label); problem != "" {
		return newError(CodeInvalidIDN, name,
			"label %q in domain name %q is not a valid internationalized label: %s", label, name, problem)
	}
	if problem := mixedScriptProblem(label); problem != "" {
		return newError(CodeMixedScript, name,
			"label %q in domain name %q %s", label, name, problem)
	}
	return nil
}

// strictProfile validates A-labels: UTS #46 non-transitional lookup with
// IDNA2008 hyphen, joiner and bidi rules.
func strictProfile() *idna.Profile {
	return idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))
}

// convertProfile maps and encodes Unicode input. It leaves hyphen placement
// to checkLabels and checkALabels so that those errors get their own code.
func convertProfile() *idna.Profile {
	return idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.CheckHyphens(false))
}

func isLDH(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// isIPLiteral reports whether s is an IPv4 or IPv6 address, bracketed or not.
func isIPLiteral(s string) bool {
	if strings.HasPrefix(s, "[") {
		return true
	}
	// Skip the parse (and its error allocation) for ordinary names.
	if last := s[len(s)-1]; !strings.Contains(s, ":") && (last < '0' || last > '9') {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// isNumericLabel reports whether a top-level label is numeric, decimal or
// hexadecimal: resolvers and URL parsers read such names ("127.1",
// "10.0.0.0x1") as IPv4 addresses, and no real top-level domain is numeric.
func isNumericLabel(label string) bool {
	digits := label
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		digits = rest
		isDigit = func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
		if rest == "" {
			return true
		}
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	return true
}

// isReservedTLD reports whether names under tld can never get a publicly
// trusted certificate: special-use names (localhost and .invalid from
// RFC 6761, .local from RFC 6762, .onion from RFC 7686, .arpa including
// home.arpa from RFC 8375, .alt from RFC 9476), .internal (reserved by ICANN
// for private use in 2024), and the private-use suffixes .lan, .corp and
// .home that ICANN will not delegate.
func isReservedTLD(tld string) bool {
	switch tld {
	case "localhost", "local", "internal", "invalid", "arpa", "onion", "alt", "lan", "corp", "home":
		return true
	}
	return false
}

// isTestingTLD reports whether tld is one of the testing suffixes of
// RFC 2606 (RFC 6761 sections 6.2 and 6.5), which only a Policy allows.
func isTestingTLD(tld string) bool {
	return tld == "test" || tld == "example"
}
