package domain

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Two names that look the same must not both be accepted: a certificate for
// one would be shown for the other. This file holds the checks IDNA does not
// make. They follow the identifier rules browsers apply before they display
// a label in Unicode (UTS #39 section 5.2, Chromium's IDN spoof checks),
// simplified.

// isInvisible reports whether r is invisible or changes how the text around
// it is displayed: a format character (general category Cf: soft hyphen,
// zero-width space, ZWNJ and ZWJ, bidi marks, embeddings, overrides and
// isolates, word joiner, invisible operators, byte order mark, Mongolian
// vowel separator, tags), a variation selector, or another
// default-ignorable code point such as U+034F COMBINING GRAPHEME JOINER and
// U+3164 HANGUL FILLER.
//
// UTS #46 mapping deletes the ones it calls "ignored", so that
// "ex\u200bample.com" would become "example.com", and IDNA2008 allows ZWNJ
// and ZWJ after a virama or between Arabic letters. Refusing them all costs
// the few Persian and Indic names that need a joiner; a name that displays
// like another costs more.
func isInvisible(r rune) bool {
	return r > unicode.MaxASCII &&
		unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// findInvisible returns the first invisible character of s, or -1.
func findInvisible(s string) rune {
	for _, r := range s {
		if isInvisible(r) {
			return r
		}
	}
	return -1
}

// mixedScriptProblem describes how the U-label label mixes scripts, or
// returns "" when it does not. The letters of a label must all come from one
// script, as in UTS #39's "highly restrictive" level, except for the
// combinations that one language writes together: Latin with Han, Hiragana
// and Katakana (Japanese), with Han and Bopomofo (Chinese), or with Han and
// Hangul (Korean). Characters of the Common and Inherited scripts (digits,
// hyphen, combining marks, the prolonged sound mark) go with any script.
//
// Simplified from UTS #39: the Script property stands in for
// Script_Extensions, and a script's digits count as that script. Whole-script
// confusables, a label entirely in Cyrillic that reads as Latin ("аррӏе"
// for "apple"), pass: catching them needs the confusables data and the
// top-level domain's expected script, which is beyond this check.
func mixedScriptProblem(label string) string {
	var (
		scripts []string // in order of first appearance
		first   []rune   // the first character of each
		table   *unicode.RangeTable
	)
	for _, r := range label {
		if table != nil && unicode.Is(table, r) {
			continue // same script as the character before
		}
		var name string
		name, table = scriptOf(r)
		if name == "Common" || name == "Inherited" || slices.Contains(scripts, name) {
			continue
		}
		scripts = append(scripts, name)
		first = append(first, r)
	}
	if len(scripts) <= 1 {
		return ""
	}
	for _, allowed := range [...][]string{
		{"Latin", "Han", "Hiragana", "Katakana"}, // Japanese
		{"Latin", "Han", "Bopomofo"},             // Chinese
		{"Latin", "Han", "Hangul"},               // Korean
	} {
		if !slices.ContainsFunc(scripts, func(s string) bool { return !slices.Contains(allowed, s) }) {
			return ""
		}
	}
	last := len(scripts) - 1
	return "mixes " + strings.Join(scripts[:last], ", ") + " and " + scripts[last] +
		" (" + describe(first[last]) + " is " + scripts[last] + "); the letters of a label must come from one script, " +
		"or be Latin with Han and kana (Japanese), Han and Bopomofo (Chinese) or Han and Hangul (Korean)"
}

// scriptOf returns the name (a key of unicode.Scripts) and the table of r's
// script, or "Unknown" and nil for an unassigned code point.
func scriptOf(r rune) (string, *unicode.RangeTable) {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin", unicode.Latin
		}
		return "Common", unicode.Common
	}
	// The scripts of most names first; then all of them.
	for _, s := range [...]struct {
		name  string
		table *unicode.RangeTable
	}{
		{"Latin", unicode.Latin}, {"Common", unicode.Common}, {"Inherited", unicode.Inherited},
		{"Han", unicode.Han}, {"Hiragana", unicode.Hiragana}, {"Katakana", unicode.Katakana},
		{"Hangul", unicode.Hangul}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek},
	} {
		if unicode.Is(s.table, r) {
			return s.name, s.table
		}
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name, table
		}
	}
	return "Unknown", nil
}
