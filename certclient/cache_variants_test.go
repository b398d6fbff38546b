package certclient

import (
	"container/list"
	"strings"
	"sync"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"
)

// The stores below are the alternatives BenchmarkZipfHandshake measures
// otterStore against; only otterStore ships.

// storeVariant builds a pair of stores (certificates, negative answers).
type storeVariant struct {
	name string
	new  func(tb testing.TB, size, negSize int) (store[*entry], store[*negative])
}

var storeVariants = []storeVariant{
	{"lru-old", func(_ testing.TB, size, negSize int) (store[*entry], store[*negative]) {
		return newListLRU[*entry](size), newListLRU[*negative](negSize)
	}},
	{"otter", func(tb testing.TB, size, negSize int) (store[*entry], store[*negative]) {
		return must(tb, newOtterStore[*entry], size), must(tb, newOtterStore[*negative], negSize)
	}},
	{"golang-lru", func(tb testing.TB, size, negSize int) (store[*entry], store[*negative]) {
		return must(tb, newGolangLRU[*entry], size), must(tb, newGolangLRU[*negative], negSize)
	}},
	{"golang-2q", func(tb testing.TB, size, negSize int) (store[*entry], store[*negative]) {
		return must(tb, newGolang2Q[*entry], size), must(tb, newGolang2Q[*negative], negSize)
	}},
}

func must[V any](tb testing.TB, f func(int) (store[V], error), size int) store[V] {
	s, err := f(size)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// variantClient is a Client like New's but on the variant's stores.
func variantClient(tb testing.TB, v storeVariant, cfg Config, size, negSize int) *Client {
	certs, negatives := v.new(tb, size, negSize)
	return newClient(strings.TrimRight(cfg.BaseURL, "/"), cfg, certs, negatives)
}

// listLRU is the cache certclient used before otter: a map and a
// container/list under one mutex, the list reordered on every hit.
type listLRU[V any] struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *lruItem[V]; front is most recently used
	items map[string]*list.Element
}

type lruItem[V any] struct {
	name string
	v    V
}

func newListLRU[V any](size int) *listLRU[V] {
	return &listLRU[V]{max: size, lru: list.New(), items: map[string]*list.Element{}}
}

func (l *listLRU[V]) Get(name string) (V, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[name]
	if !ok {
		var zero V
		return zero, false
	}
	l.lru.MoveToFront(el)
	return el.Value.(*lruItem[V]).v, true
}

func (l *listLRU[V]) Set(name string, v V) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[name]; ok {
		el.Value.(*lruItem[V]).v = v
		l.lru.MoveToFront(el)
		return
	}
	l.items[name] = l.lru.PushFront(&lruItem[V]{name: name, v: v})
	for l.lru.Len() > l.max {
		back := l.lru.Back()
		l.lru.Remove(back)
		delete(l.items, back.Value.(*lruItem[V]).name)
	}
}

func (l *listLRU[V]) Delete(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[name]; ok {
		l.lru.Remove(el)
		delete(l.items, name)
	}
}

func (l *listLRU[V]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// golangLRU is hashicorp/golang-lru's LRU (one mutex, like listLRU).
type golangLRU[V any] struct{ c *lru.Cache[string, V] }

func newGolangLRU[V any](size int) (store[V], error) {
	c, err := lru.New[string, V](size)
	return golangLRU[V]{c}, err
}

func (s golangLRU[V]) Get(name string) (V, bool) { return s.c.Get(name) }
func (s golangLRU[V]) Set(name string, v V)      { s.c.Add(name, v) }
func (s golangLRU[V]) Delete(name string)        { s.c.Remove(name) }
func (s golangLRU[V]) Len() int                  { return s.c.Len() }

// golang2Q is hashicorp/golang-lru's 2Q: recent and frequent lists and a
// ghost list, so names seen once do not flush names seen often.
type golang2Q[V any] struct{ c *lru.TwoQueueCache[string, V] }

func newGolang2Q[V any](size int) (store[V], error) {
	c, err := lru.New2Q[string, V](size)
	return golang2Q[V]{c}, err
}

func (s golang2Q[V]) Get(name string) (V, bool) { return s.c.Get(name) }
func (s golang2Q[V]) Set(name string, v V)      { s.c.Add(name, v) }
func (s golang2Q[V]) Delete(name string)        { s.c.Remove(name) }
func (s golang2Q[V]) Len() int                  { return s.c.Len() }
