package budget

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvOrderBudget is the environment variable holding the budget spec of
// the primary CA's account; EnvFallbackOrderBudget the fallback CA's.
const (
	EnvOrderBudget         = "CERTFLOW_ORDER_BUDGET"
	EnvFallbackOrderBudget = "CERTFLOW_FALLBACK_ORDER_BUDGET"
)

// FallbackName is the name of the fallback CA's budget (DefaultName is
// the primary's).
const FallbackName = "new-orders-fallback"

// DefaultSpec is the budget when EnvOrderBudget is empty: Let's Encrypt's
// 300 new orders per account per 3 hours.
const DefaultSpec = "300/3h"

// ParseSpec parses a budget spec "<limit>/<window>" such as "300/3h": at
// most limit new orders in any window (a time.ParseDuration string).
func ParseSpec(spec string) (limit int, window time.Duration, err error) {
	l, w, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return 0, 0, fmt.Errorf("budget %q: want <limit>/<window>, e.g. %s", spec, DefaultSpec)
	}
	limit, err = strconv.Atoi(l)
	if err != nil || limit < 1 {
		return 0, 0, fmt.Errorf("budget %q: limit must be a positive integer", spec)
	}
	window, err = time.ParseDuration(w)
	if err != nil || window <= 0 {
		return 0, 0, fmt.Errorf("budget %q: window must be a positive duration such as 3h", spec)
	}
	return limit, window, nil
}

// ConfigFromEnv returns the Config of the primary CA's budget in table that
// CERTFLOW_ORDER_BUDGET describes (DefaultSpec when it is empty).
func ConfigFromEnv(table string) (Config, error) {
	return configFromEnv(table, EnvOrderBudget, DefaultName)
}

// FallbackConfigFromEnv returns the Config of the fallback CA's budget,
// which CERTFLOW_FALLBACK_ORDER_BUDGET describes (DefaultSpec when empty).
func FallbackConfigFromEnv(table string) (Config, error) {
	return configFromEnv(table, EnvFallbackOrderBudget, FallbackName)
}

func configFromEnv(table, env, name string) (Config, error) {
	spec := os.Getenv(env)
	if spec == "" {
		spec = DefaultSpec
	}
	limit, window, err := ParseSpec(spec)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", env, err)
	}
	return Config{Table: table, Name: name, Limit: limit, Window: window}, nil
}
