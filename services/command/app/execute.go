package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
)

// idemKey is a request's Idempotency-Key, scoped to its subject, with the hash of what the
// request asks (the same key for another request is refused).
type idemKey struct {
	subject, key, hash string
}

func requestHash(op string, args any) string {
	raw, _ := json.Marshal(args)
	sum := sha256.Sum256(append([]byte(op+"\n"), raw...))
	return hex.EncodeToString(sum[:])
}

// Fault points where tests stop a keyed write as a crash would (see export_test.go).
const (
	faultAfterClaim  = "after-claim"  // the key's plan is durable, nothing appended yet
	faultAfterCommit = "after-commit" // the transaction is committed, the answer not stored
)

// faultHook is called at each fault point with the attempt's transactional id and events.
// dropSession closes the attempt's database connection (its locks go, as with a dead
// process). Returning true stops the attempt there as if the process died.
type faultHook func(point, transactionalID string, envs []events.Envelope, dropSession func()) (crash bool)

var errCrashed = errors.New("simulated crash")

// execute runs a write. Without an Idempotency-Key: lock the ticket, decide, append with the
// idempotent producer, answer. With one, exactly once whatever crashes:
//
//  1. the key's advisory lock tells a live duplicate (409 request_in_progress) from the retry
//     of a dead attempt; an answered key replays its answer;
//  2. a claimed key whose outcome is unknown is recovered: the key's transactional id is
//     initialised (fencing the earlier attempt: its open transaction is aborted, its commit
//     can no longer succeed), then the claimed partition is scanned from the claimed offset
//     for the claimed event ids — found: the stored answer; not found: decided afresh;
//  3. a fresh decision is claimed durably (event ids, answer, partition and end offset)
//     before it is appended in one transaction under the key's transactional id, then the
//     answer is stored.
func (s *Service) execute(ctx context.Context, actor Actor, key string, w write) (Result, error) {
	var k *idemKey
	ids := &idSource{}
	if key != "" {
		if len(key) > 200 {
			return Result{}, httpx.BadRequest("Idempotency-Key is longer than 200 characters")
		}
		k = &idemKey{subject: actor.Subject, key: key, hash: requestHash(w.op, w.args)}
		ids = keyIDs(actor.Subject, key)
	}
	conn, err := s.store.acquire(ctx)
	if err != nil {
		return Result{}, dbError(err)
	}
	sess := &session{conn: conn}
	defer sess.release()
	var txn *kafka.TxnProducer
	defer func() {
		if txn != nil {
			txn.Close()
		}
	}()
	if k != nil {
		res, done, err := s.resume(ctx, sess, k, &txn)
		if err != nil || done {
			return res, err
		}
	}
	return s.decideAndAppend(ctx, sess, actor, k, ids, w, &txn)
}

// resume handles what an earlier attempt with the same key left; done reports that res is
// the answer.
func (s *Service) resume(ctx context.Context, sess *session, k *idemKey, txn **kafka.TxnProducer) (res Result, done bool, err error) {
	locked, err := sess.tryLockKey(ctx, k)
	if err != nil {
		return Result{}, true, dbError(err)
	}
	c, err := sess.loadClaim(ctx, k)
	if err != nil {
		return Result{}, true, dbError(err)
	}
	inProgress := httpx.Conflict("request_in_progress", "a request with this Idempotency-Key is still in progress")
	switch {
	case c == nil && !locked:
		return Result{}, true, inProgress
	case c == nil:
		return Result{}, false, nil
	case c.hash != k.hash:
		return Result{}, true, httpx.Errorf(fiber.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	case c.status != nil:
		return Result{Status: *c.status, Body: c.response, Replayed: true}, true, nil
	case !locked:
		return Result{}, true, inProgress
	case !c.planned:
		// Claimed by a version that did not record its plan: nothing to look for.
		return Result{}, false, nil
	}
	p, err := kafka.NewTxnProducer(ctx, s.log.cfg, transactionalID(k.subject, k.key))
	if err != nil {
		return Result{}, true, logUnavailable(err)
	}
	*txn = p
	found, err := s.log.contains(ctx, c.partition, c.offset, c.eventIDs)
	if err != nil {
		s.logger.Error("idempotent retry: scan failed", "err", err)
		return Result{}, true, httpx.Unavailable("could not check the event log for this request's earlier attempt; nothing was written, retry with the same Idempotency-Key")
	}
	if !found {
		// Fenced and not in the log: the earlier attempt appended nothing and never will.
		return Result{}, false, nil
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := sess.answer(bg, k, c.plannedSt, c.plannedRe); err != nil {
		s.logger.Error("store idempotent answer", "err", err)
	}
	return Result{Status: c.plannedSt, Body: c.plannedRe, Replayed: true}, true, nil
}

func (s *Service) decideAndAppend(ctx context.Context, sess *session, actor Actor, k *idemKey, ids *idSource, w write, txn **kafka.TxnProducer) (Result, error) {
	var t Ticket
	if w.ticketID != "" {
		// A cheap visibility check first, so unknown or foreign tickets never take a lock.
		if _, err := visibleOn(ctx, sess.conn, actor, w.ticketID); err != nil {
			return Result{}, s.refuse(ctx, sess, k, err)
		}
		if err := sess.lockTicket(ctx, w.ticketID); err != nil {
			return Result{}, dbError(err)
		}
		var err error
		if t, err = visibleOn(ctx, sess.conn, actor, w.ticketID); err != nil { // re-read under the lock
			return Result{}, s.refuse(ctx, sess, k, err)
		}
	}
	pl, err := w.decide(t, ids)
	if err != nil {
		return Result{}, s.refuse(ctx, sess, k, err)
	}
	body, err := json.Marshal(pl.body)
	if err != nil {
		return Result{}, err
	}
	appendCtx, cancel := context.WithTimeout(ctx, s.cfg.AppendTimeout)
	defer cancel()
	var pos []events.Position
	if k == nil {
		if pos, err = s.log.producer.Append(appendCtx, pl.events...); err != nil {
			return Result{}, s.appendError(err)
		}
	} else {
		if pos, err = s.appendOnce(ctx, appendCtx, sess, k, pl, body, txn); err != nil {
			return Result{}, err
		}
	}
	if sess.conn != nil {
		s.store.waitProjected(ctx, sess.conn, pos[len(pos)-1], s.cfg.ProjectionWait)
	}
	return Result{Status: pl.status, Body: body, Location: pl.location}, nil
}

// appendOnce is step 3 of execute: claim the plan durably, append it in the key's
// transaction, store the answer.
func (s *Service) appendOnce(ctx, appendCtx context.Context, sess *session, k *idemKey, pl plan, body []byte, txn **kafka.TxnProducer) ([]events.Position, error) {
	partition, offset, err := s.log.position(appendCtx, pl.ticketID)
	if err != nil {
		return nil, logUnavailable(err)
	}
	tid := transactionalID(k.subject, k.key)
	if *txn == nil {
		if *txn, err = kafka.NewTxnProducer(appendCtx, s.log.cfg, tid); err != nil {
			return nil, logUnavailable(err)
		}
	}
	eventIDs := make([]string, len(pl.events))
	for i, env := range pl.events {
		eventIDs[i] = env.ID
	}
	if err := sess.savePlan(ctx, k, pl.ticketID, eventIDs, partition, offset, pl.status, body); err != nil {
		return nil, dbError(err)
	}
	if s.crashAt(faultAfterClaim, sess, tid, pl.events) {
		return nil, errCrashed
	}
	pos, err := (*txn).Append(appendCtx, pl.events...)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	switch {
	case errors.Is(err, kafka.ErrFenced):
		s.logger.Warn("idempotent write superseded by a newer attempt", "err", err)
		return nil, httpx.Conflict("request_superseded", "a newer attempt with this Idempotency-Key took over this request; retry with the same key to get its answer")
	case errors.Is(err, kafka.ErrUnconfirmed):
		// The claim stays: the retry fences this attempt and finds out from the log.
		return nil, s.appendError(err)
	case err != nil:
		// The transaction was aborted before its commit was asked: nothing is visible.
		if ferr := sess.forget(bg, k); ferr != nil {
			s.logger.Error("free idempotency key", "err", ferr)
		}
		return nil, s.appendError(err)
	}
	if s.crashAt(faultAfterCommit, sess, tid, pl.events) {
		return nil, errCrashed
	}
	if err := sess.answer(bg, k, pl.status, body); err != nil {
		// Durable all the same: a retry recovers the answer from the claim and the log.
		s.logger.Error("store idempotent answer", "err", err)
	}
	return pos, nil
}

// refuse stores a 4xx decision as the key's answer, so a retry gets the same refusal.
func (s *Service) refuse(ctx context.Context, sess *session, k *idemKey, err error) error {
	var apiErr *httpx.Error
	if k == nil || !errors.As(err, &apiErr) || apiErr.Status >= 500 || sess.conn == nil {
		return err
	}
	body, merr := json.Marshal(fiber.Map{"success": false, "error": apiErr})
	if merr != nil {
		return err
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if serr := sess.answer(bg, k, apiErr.Status, body); serr != nil {
		s.logger.Error("store idempotent answer", "err", serr)
	}
	return err
}

func (s *Service) crashAt(point string, sess *session, tid string, envs []events.Envelope) bool {
	if s.faults == nil {
		return false
	}
	if s.faults(point, tid, envs, sess.kill) {
		sess.kill()
		return true
	}
	return false
}

// appendError maps an append failure to 503: nothing was appended, or (unconfirmed) it may
// still be applied once.
func (s *Service) appendError(err error) error {
	if errors.Is(err, kafka.ErrUnconfirmed) {
		s.logger.Error("append unconfirmed", "err", err)
		return httpx.Errorf(fiber.StatusServiceUnavailable, "append_unconfirmed",
			"the event log did not confirm the write in time; it may still be applied once — retry with the same Idempotency-Key, which makes the retry safe")
	}
	s.logger.Error("append failed", "err", err)
	return httpx.Unavailable("the event log is unavailable; nothing was written, retry later")
}

func logUnavailable(err error) error {
	return httpx.Unavailable("the event log is unavailable; nothing was written, retry later (%v)", err)
}

// visibleOn loads a ticket the actor may see: 404 if unknown, 403 if not theirs.
func visibleOn(ctx context.Context, q querier, actor Actor, id string) (Ticket, error) {
	if id == "" || len(id) > 100 {
		return Ticket{}, httpx.Invalid("ticket id must be 1 to 100 characters")
	}
	t, err := ticketOn(ctx, q, id)
	if errors.Is(err, errNotFound) {
		return t, httpx.NotFound("ticket %q not found", id)
	}
	if err != nil {
		return t, dbError(err)
	}
	if !actor.canAccess(t.Owner) {
		return t, httpx.Forbidden("you may not access ticket %q", id)
	}
	return t, nil
}
