package caproxy

import (
	"testing"
	"time"
)

// TestPebbleOrder: newOrders reach Pebble side by side, a request on an
// authorization never together with a newOrder (Pebble's deadlock).
func TestPebbleOrder(t *testing.T) {
	var p Proxy
	first, second := p.pebbleOrder(OpNewOrder), p.pebbleOrder(OpNewOrder)
	through := make(chan struct{})
	go func() {
		p.pebbleOrder(OpAuthz)()
		close(through)
	}()
	select {
	case <-through:
		t.Fatal("an authorization request went through while newOrders were at Pebble")
	case <-time.After(50 * time.Millisecond):
	}
	first()
	second()
	select {
	case <-through:
	case <-time.After(5 * time.Second):
		t.Fatal("the authorization request never went through")
	}
	p.pebbleOrder(OpChallenge)() // other operations are not held
}
