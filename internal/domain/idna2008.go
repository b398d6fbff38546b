package domain

import (
	"fmt"
	"strings"
	"unicode"
)

// idna2008Problem checks a U-label against the IDNA2008 code point
// derivation (RFC 5892) and the CONTEXTO rules of its Appendix A, and
// describes the first problem it finds ("" when there is none).
//
// golang.org/x/net/idna implements UTS #46, which marks many symbols and
// punctuation "valid" for compatibility (status NV8: not valid in IDNA2008),
// so an A-label such as "xn--zz-zzz" (U+298C SQUARE BRACKET WITH UNDERBAR)
// passes it. A public CA applies IDNA2008, so we do too. The label has
// already been through UTS #46 mapping, so it is lower case, NFC and free of
// ignorable and unassigned code points; what remains is to keep only letters,
// marks and digits plus the RFC 5892 exceptions.
func idna2008Problem(label string) string {
	var hasKanaOrHan, arabicIndic, extArabicIndic bool
	for _, r := range label {
		switch {
		case unicode.In(r, unicode.Hiragana, unicode.Katakana, unicode.Han):
			hasKanaOrHan = true
		case '\u0660' <= r && r <= '\u0669':
			arabicIndic = true
		case '\u06F0' <= r && r <= '\u06F9':
			extArabicIndic = true
		}
	}
	if arabicIndic && extArabicIndic {
		return "it mixes Arabic-Indic and extended Arabic-Indic digits"
	}
	runes := []rune(label)
	for i, r := range runes {
		if r <= unicode.MaxASCII {
			continue // LDH, already checked
		}
		switch r {
		case '\u00DF', '\u03C2', '\u06FD', '\u06FE', '\u0F0B', '\u3007', '\u200C', '\u200D':
			// PVALID exceptions and the joiners (CONTEXTJ, checked by
			// the idna package).
			continue
		case '\u0640', '\u07FA', '\u302E', '\u302F', '\u3031', '\u3032', '\u3033', '\u3034', '\u3035', '\u303B':
			return "it contains " + describe(r) + ", which IDNA2008 disallows"
		case '\u00B7': // MIDDLE DOT: only between two 'l' (Catalan l·l)
			if i == 0 || i == len(runes)-1 || runes[i-1] != 'l' || runes[i+1] != 'l' {
				return "it contains U+00B7 MIDDLE DOT outside \"l·l\""
			}
			continue
		case '\u0375': // GREEK LOWER NUMERAL SIGN: must precede Greek
			if i == len(runes)-1 || !unicode.Is(unicode.Greek, runes[i+1]) {
				return "it contains U+0375 GREEK LOWER NUMERAL SIGN not followed by Greek"
			}
			continue
		case '\u05F3', '\u05F4': // HEBREW GERESH, GERSHAYIM: must follow Hebrew
			if i == 0 || !unicode.Is(unicode.Hebrew, runes[i-1]) {
				return "it contains " + describe(r) + " not preceded by Hebrew"
			}
			continue
		case '\u30FB': // KATAKANA MIDDLE DOT: needs Hiragana, Katakana or Han
			if !hasKanaOrHan || strings.Trim(label, "\u30FB") == "" {
				return "it contains U+30FB KATAKANA MIDDLE DOT without Japanese text"
			}
			continue
		}
		if !unicode.In(r, unicode.Ll, unicode.Lo, unicode.Lm, unicode.Mn, unicode.Mc, unicode.Nd) {
			return "it contains " + describe(r) + ", which is not a letter, mark or digit and so is disallowed by IDNA2008"
		}
	}
	return ""
}

func describe(r rune) string {
	return fmt.Sprintf("%U %q", r, r)
}
