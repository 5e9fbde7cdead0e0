package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
)

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
func (a *Application) execute(ctx context.Context, actor Actor, key string, w write) (Result, error) {
	var k *IdemKey
	ids := &idSource{}
	if key != "" {
		if len(key) > 200 {
			return Result{}, httpx.BadRequest("Idempotency-Key is longer than 200 characters")
		}
		k = &IdemKey{Subject: actor.Subject, Key: key, Hash: requestHash(w.op, w.args)}
		ids = keyIDs(actor.Subject, key)
	}
	sess, err := a.store.Session(ctx)
	if err != nil {
		return Result{}, dbError(err)
	}
	defer sess.Release()
	var txn Transaction
	defer func() {
		if txn != nil {
			txn.Close()
		}
	}()
	if k != nil {
		res, done, err := a.resume(ctx, sess, k, &txn)
		if err != nil || done {
			return res, err
		}
	}
	return a.decideAndAppend(ctx, sess, actor, k, ids, w, &txn)
}

// resume handles what an earlier attempt with the same key left; done reports that res is
// the answer.
func (a *Application) resume(ctx context.Context, sess Session, k *IdemKey, txn *Transaction) (res Result, done bool, err error) {
	locked, err := sess.TryLockKey(ctx, *k)
	if err != nil {
		return Result{}, true, dbError(err)
	}
	c, err := sess.LoadClaim(ctx, *k)
	if err != nil {
		return Result{}, true, dbError(err)
	}
	inProgress := httpx.Conflict("request_in_progress", "a request with this Idempotency-Key is still in progress")
	switch {
	case c == nil && !locked:
		return Result{}, true, inProgress
	case c == nil:
		return Result{}, false, nil
	case c.Hash != k.Hash:
		return Result{}, true, httpx.Errorf(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	case c.Status != nil:
		return Result{Status: *c.Status, Body: c.Response, Replayed: true}, true, nil
	case !locked:
		return Result{}, true, inProgress
	case !c.Planned:
		// Claimed by a version that did not record its plan: nothing to look for.
		return Result{}, false, nil
	}
	p, err := a.log.Transactional(ctx, transactionalID(k.Subject, k.Key))
	if err != nil {
		return Result{}, true, logUnavailable(err)
	}
	*txn = p
	found, err := a.log.Contains(ctx, c.Partition, c.Offset, c.EventIDs)
	if err != nil {
		a.logger.Error("idempotent retry: scan failed", "err", err)
		return Result{}, true, httpx.Unavailable("could not check the event log for this request's earlier attempt; nothing was written, retry with the same Idempotency-Key")
	}
	if !found {
		// Fenced and not in the log: the earlier attempt appended nothing and never will.
		return Result{}, false, nil
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := sess.Answer(bg, *k, c.PlannedSt, c.PlannedRe); err != nil {
		a.logger.Error("store idempotent answer", "err", err)
	}
	return Result{Status: c.PlannedSt, Body: c.PlannedRe, Replayed: true}, true, nil
}

func (a *Application) decideAndAppend(ctx context.Context, sess Session, actor Actor, k *IdemKey, ids *idSource, w write, txn *Transaction) (Result, error) {
	var t Ticket
	if w.ticketID != "" {
		// A cheap visibility check first, so unknown or foreign tickets never take a lock.
		if _, err := visibleOn(ctx, sess, actor, w.ticketID); err != nil {
			return Result{}, a.refuse(ctx, sess, k, err)
		}
		if err := sess.LockTicket(ctx, w.ticketID); err != nil {
			return Result{}, dbError(err)
		}
		var err error
		if t, err = visibleOn(ctx, sess, actor, w.ticketID); err != nil { // re-read under the lock
			return Result{}, a.refuse(ctx, sess, k, err)
		}
	}
	pl, err := w.decide(t, ids)
	if err != nil {
		return Result{}, a.refuse(ctx, sess, k, err)
	}
	body, err := json.Marshal(pl.body)
	if err != nil {
		return Result{}, err
	}
	appendCtx, cancel := context.WithTimeout(ctx, a.cfg.AppendTimeout)
	defer cancel()
	var pos []events.Position
	if k == nil {
		if pos, err = a.log.Append(appendCtx, pl.events...); err != nil {
			return Result{}, a.appendError(err)
		}
	} else {
		if pos, err = a.appendOnce(ctx, appendCtx, sess, k, pl, body, txn); err != nil {
			return Result{}, err
		}
	}
	if sess.Alive() {
		sess.WaitProjected(ctx, pos[len(pos)-1], a.cfg.ProjectionWait)
	}
	return Result{Status: pl.status, Body: body, Location: pl.location}, nil
}

// appendOnce is step 3 of execute: claim the plan durably, append it in the key's
// transaction, store the answer.
func (a *Application) appendOnce(ctx, appendCtx context.Context, sess Session, k *IdemKey, pl plan, body []byte, txn *Transaction) ([]events.Position, error) {
	partition, offset, err := a.log.Position(appendCtx, pl.ticketID)
	if err != nil {
		return nil, logUnavailable(err)
	}
	tid := transactionalID(k.Subject, k.Key)
	if *txn == nil {
		if *txn, err = a.log.Transactional(appendCtx, tid); err != nil {
			return nil, logUnavailable(err)
		}
	}
	eventIDs := make([]string, len(pl.events))
	for i, env := range pl.events {
		eventIDs[i] = env.ID
	}
	if err := sess.SavePlan(ctx, *k, pl.ticketID, eventIDs, partition, offset, pl.status, body); err != nil {
		return nil, dbError(err)
	}
	if a.crashAt(faultAfterClaim, sess, tid, pl.events) {
		return nil, errCrashed
	}
	pos, err := (*txn).Append(appendCtx, pl.events...)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	switch {
	case errors.Is(err, kafka.ErrFenced):
		a.logger.Warn("idempotent write superseded by a newer attempt", "err", err)
		return nil, httpx.Conflict("request_superseded", "a newer attempt with this Idempotency-Key took over this request; retry with the same key to get its answer")
	case errors.Is(err, kafka.ErrUnconfirmed):
		// The claim stays: the retry fences this attempt and finds out from the log.
		return nil, a.appendError(err)
	case err != nil:
		// The transaction was aborted before its commit was asked: nothing is visible.
		if ferr := sess.Forget(bg, *k); ferr != nil {
			a.logger.Error("free idempotency key", "err", ferr)
		}
		return nil, a.appendError(err)
	}
	if a.crashAt(faultAfterCommit, sess, tid, pl.events) {
		return nil, errCrashed
	}
	if err := sess.Answer(bg, *k, pl.status, body); err != nil {
		// Durable all the same: a retry recovers the answer from the claim and the log.
		a.logger.Error("store idempotent answer", "err", err)
	}
	return pos, nil
}

// refuse stores a 4xx decision as the key's answer, so a retry gets the same refusal.
func (a *Application) refuse(ctx context.Context, sess Session, k *IdemKey, err error) error {
	var apiErr *httpx.Error
	if k == nil || !errors.As(err, &apiErr) || apiErr.Status >= 500 || !sess.Alive() {
		return err
	}
	body, merr := json.Marshal(map[string]any{"success": false, "error": apiErr})
	if merr != nil {
		return err
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if serr := sess.Answer(bg, *k, apiErr.Status, body); serr != nil {
		a.logger.Error("store idempotent answer", "err", serr)
	}
	return err
}

func (a *Application) crashAt(point string, sess Session, tid string, envs []events.Envelope) bool {
	if a.faults == nil {
		return false
	}
	if a.faults(point, tid, envs, sess.Kill) {
		sess.Kill()
		return true
	}
	return false
}

// appendError maps an append failure to 503: nothing was appended, or (unconfirmed) it may
// still be applied once.
func (a *Application) appendError(err error) error {
	if errors.Is(err, kafka.ErrUnconfirmed) {
		a.logger.Error("append unconfirmed", "err", err)
		return httpx.Errorf(http.StatusServiceUnavailable, "append_unconfirmed",
			"the event log did not confirm the write in time; it may still be applied once — retry with the same Idempotency-Key, which makes the retry safe")
	}
	a.logger.Error("append failed", "err", err)
	return httpx.Unavailable("the event log is unavailable; nothing was written, retry later")
}

func logUnavailable(err error) error {
	return httpx.Unavailable("the event log is unavailable; nothing was written, retry later (%v)", err)
}

// visibleOn loads a ticket the actor may see: 404 if unknown, 403 if not theirs.
func visibleOn(ctx context.Context, q ticketReader, actor Actor, id string) (Ticket, error) {
	if id == "" || len(id) > 100 {
		return Ticket{}, httpx.Invalid("ticket id must be 1 to 100 characters")
	}
	t, err := q.Ticket(ctx, id)
	if errors.Is(err, ErrNotFound) {
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

// ticketReader reads a ticket: the Store, or a write's Session under its locks.
type ticketReader interface {
	Ticket(ctx context.Context, id string) (Ticket, error)
}

// transactionalID is the one id every attempt of (subject, key) produces under, so that a
// later attempt fences any earlier one still in flight.
func transactionalID(subject, key string) string {
	sum := sha256.Sum256([]byte(subject + "\x00" + key))
	return "ticketflow-command-" + hex.EncodeToString(sum[:16])
}

// dbError maps a database failure to the API's error: 503, nothing written.
func dbError(err error) error {
	var apiErr *httpx.Error
	switch {
	case errors.As(err, &apiErr):
		return err
	case errors.Is(err, ErrBusy):
		return httpx.Unavailable("the database is busy; nothing was written, retry later")
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return httpx.Unavailable("request timed out; nothing was written")
	}
	return httpx.Unavailable("database unavailable: %v", err)
}
