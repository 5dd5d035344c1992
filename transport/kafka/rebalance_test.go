package kafka

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// member is one consumer of a rebalance test: it commits everything it was
// delivered when its partitions are revoked, as an analyzer that flushes
// its flow state would.
type member struct {
	sub        *Subscriber
	last       map[int]int64 // partition -> last delivered offset, not yet committed
	assigned   [][]int
	revoked    [][]int
	commitErr  error
	deliverErr error
}

// TestRebalance: a second member joins mid-stream; the first is told which
// partitions it loses after their last delivery, commits there, and no row
// is delivered twice or lost across the two.
func TestRebalance(t *testing.T) {
	brokers(t, func(t *testing.T, b broker) {
		const parts = 4
		topic := b.newName("packets")
		b.create(t, topic, parts)
		b.create(t, topic+".dlq", 1)
		group := b.newName("analyzer")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		var mu sync.Mutex // guards got, members' fields
		got := newSeen()
		changed := make(chan struct{}, 1)
		publish := func(first uint32, n int) {
			pub, err := NewPublisher(ctx, PublisherConfig{Brokers: b.addrs, Topic: topic, MaxRows: 200, Linger: 10 * time.Millisecond, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(first), 9))
			for i := 0; i < n; i += 500 {
				if err := pub.Publish(ctx, makeBatch(rng, first+uint32(i), 500)); err != nil {
					t.Fatal(err)
				}
			}
			if err := pub.Close(); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		join := func() *member {
			m := &member{last: map[int]int64{}}
			sub, err := NewSubscriber(SubscriberConfig{
				Brokers: b.addrs, Topic: topic, Group: group, Logger: quietLogger(),
				HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
				OnAssigned: func(p []int) {
					mu.Lock()
					m.assigned = append(m.assigned, p)
					mu.Unlock()
				},
				OnRevoked: func(p []int) {
					mu.Lock()
					defer mu.Unlock()
					m.revoked = append(m.revoked, p)
					for _, part := range p {
						if off, ok := m.last[part]; ok {
							if err := m.sub.Commit(part, off); err != nil && m.commitErr == nil {
								m.commitErr = err
							}
							delete(m.last, part)
						}
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			m.sub = sub
			wg.Go(func() {
				for {
					d, err := sub.Next(ctx)
					if err != nil {
						return
					}
					mu.Lock()
					if err := got.add(d); err != nil && m.deliverErr == nil {
						m.deliverErr = err
					}
					m.last[d.Partition] = d.Offset
					mu.Unlock()
					sub.Release(d)
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			})
			return m
		}
		waitRows := func(n int) {
			t.Helper()
			for {
				mu.Lock()
				have := len(got.rows)
				mu.Unlock()
				if have >= n {
					return
				}
				select {
				case <-changed:
				case <-ctx.Done():
					t.Fatalf("%d of %d rows delivered", have, n)
				}
			}
		}
		waitRevoked := func(m *member) {
			t.Helper()
			for {
				mu.Lock()
				n := len(m.revoked)
				mu.Unlock()
				if n > 0 {
					return
				}
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					t.Fatal("first member never saw a revocation")
				}
			}
		}

		a := join()
		publish(0, 3000)
		waitRows(3000)
		bm := join()
		waitRevoked(a)
		publish(10_000, 3000)
		waitRows(6000)

		for _, m := range []*member{a, bm} {
			if err := m.sub.Close(); err != nil {
				t.Error(err)
			}
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, m := range []*member{a, bm} {
			if m.deliverErr != nil {
				t.Fatal(m.deliverErr)
			}
		}
		if a.commitErr != nil {
			t.Fatalf("commit in OnRevoked: %v", a.commitErr)
		}
		if !slices.Equal(a.revoked[0], []int{0, 1, 2, 3}) {
			t.Errorf("first revocation %v, want every partition", a.revoked[0])
		}
		// After the rebalance the two members split the partitions.
		final := append(slices.Clone(a.assigned[len(a.assigned)-1]), bm.assigned[len(bm.assigned)-1]...)
		slices.Sort(final)
		if !slices.Equal(final, []int{0, 1, 2, 3}) || len(bm.assigned[len(bm.assigned)-1]) == 0 {
			t.Errorf("final assignments %v and %v, want a split of 0..3", a.assigned, bm.assigned)
		}
		if len(got.rows) != 6000 {
			t.Errorf("%d rows delivered, want 6000", len(got.rows))
		}
	})
}
