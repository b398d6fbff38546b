// Package budget schedules new ACME orders so that the CA's new-order limit
// (Limit orders per sliding Window, Let's Encrypt's 300 per 3 hours by
// default) is never exceeded, without polling: a new order reserves the next
// free slot of the schedule once, and its execution waits once, until the
// slot's time. Only new orders reserve slots: the state machine lets
// renewals that carry an ARI "replaces" skip the budget.
//
// # Items
//
// A budget lives in the certflow table under pk "BUDGET#<name>" (name
// "new-orders" unless configured, so several CAs can have a budget each):
//
//	sk "SEQ"       seq (N): the number of reservations ever started
//	sk "SLOT#<r>"  seq (N): the reservation holding ring position r
//	               slot (N): that reservation's time, Unix milliseconds
//	               placed (N): when the position last admitted an order
//
// r runs from 0 to Limit-1, zero-padded to the width of Limit-1 ("SLOT#000"
// to "SLOT#299"). The ring items are created by the first Limit
// reservations.
//
// # Reserving
//
// Reservation k first increments the counter (an atomic ADD, which never
// conflicts) and then writes ring position (k-1) mod Limit with one of two
// conditional writes, where step is Window plus Margin:
//
//	A, window free: SET slot = now, seq = k
//	                IF attribute_not_exists(seq) OR (seq < k AND slot <= now-step)
//	B, window busy: SET slot = slot + step, seq = k
//	                IF seq < k AND slot > now-step
//
// Both conditions fail only when a later reservation, k+Limit or after, has
// written the position already; k is then abandoned, like a crashed
// reservation, and the reservation starts again with a new number. That
// takes Limit reservations completing between two calls of one, so it is
// rare unless many more callers than Limit reserve at once, and then costs
// calls, not slots.
//
// # Guarantee
//
// Every write to a position requires seq < k and stores seq = k, so the
// writes to one position succeed in increasing k, and each stores
// max(now, old slot + step) >= old slot + step. Hence two reservations i < j
// of the same position hold slot_j >= slot_i + step. A position is used by
// at most one slot in any half-open interval of length step, and by the
// pigeonhole principle any such interval holds at most Limit slots. A
// reservation that crashed between its two calls left its position to the
// one before it; the next reservation of the position takes it over
// (seq < k) and steps from the last slot actually written, so the chain of
// used slots still steps by step or more.
//
// The slots are the queue; admission makes the bound exact. An execution
// waits until its slot, and the Issue step then asks Schedule.Admit, one
// conditional write on the ring position, stamped with the time the order
// is sent: it is refused while the position admitted an order less than a
// step ago. A late execution (its Lambda throttled, its engine slow) thus
// never squeezes two orders of one position into a Window: the later one
// waits. An order reaching the CA within Margin of its admission keeps the
// orders of a position at least step - Margin = Window apart at the CA, so
// the CA sees at most Limit orders in any Window. The price is a sustained
// rate of Limit per Window+Margin, 1% under the CA's. The schedule runs on
// whole seconds (now is rounded up, step too) so the time a Wait state is
// given is exactly the slot.
//
// Lowering Limit takes full effect one Window after the change: the slots
// already given to positions Limit and above still count at the CA but no
// longer in the ring. Raising it is safe at once.
//
// # Cost
//
// A reservation is two writes of small items (about 1 WRU each) when its
// window is free, three when the window is busy (write A fails and a failed
// conditional write is billed too), plus the storage of Limit+1 small items
// per budget. Nothing polls: an execution spends one Task and one Wait.
package budget
