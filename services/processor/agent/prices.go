package agent

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/ticketflow/ticketflow/services/processor/llm"
)

// DefaultPrices is the default of TICKETFLOW_LLM_PRICES: USD per million input and output
// tokens of the default models (list prices; override them when yours differ).
const DefaultPrices = "claude-sonnet-4-5=3:15,claude-opus-4-1=15:75,claude-haiku-4-5=1:5,gpt-4o-mini=0.15:0.6,gpt-4o=2.5:10,gpt-4.1=2:8,gpt-4.1-mini=0.4:1.6,demo=0:0"

// Price is what one model costs, in USD per million tokens.
type Price struct {
	InPerMTok  float64
	OutPerMTok float64
}

// Prices is the per-model price table. A model absent from it costs 0, with one warning per
// model (so a misspelt model name shows in the log rather than as a silently free run).
type Prices struct {
	table  map[string]Price
	log    *slog.Logger
	mu     sync.Mutex
	warned map[string]bool
}

// ParsePrices reads "model=in_per_mtok:out_per_mtok,..." (spaces allowed around items).
func ParsePrices(spec string, log *slog.Logger) (*Prices, error) {
	p := &Prices{table: map[string]Price{}, log: log, warned: map[string]bool{}}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		model, rates, ok := strings.Cut(item, "=")
		in, out, ok2 := strings.Cut(rates, ":")
		if !ok || !ok2 || strings.TrimSpace(model) == "" {
			return nil, fmt.Errorf("TICKETFLOW_LLM_PRICES: %q is not model=in_per_mtok:out_per_mtok", item)
		}
		inF, err1 := strconv.ParseFloat(strings.TrimSpace(in), 64)
		outF, err2 := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err1 != nil || err2 != nil || inF < 0 || outF < 0 {
			return nil, fmt.Errorf("TICKETFLOW_LLM_PRICES: %q: prices must be non-negative numbers", item)
		}
		p.table[strings.TrimSpace(model)] = Price{InPerMTok: inF, OutPerMTok: outF}
	}
	return p, nil
}

// Cost is the USD price of usage on model. Providers often answer with a dated model id
// (claude-sonnet-4-5-20250929): the longest table entry the id starts with is used.
func (p *Prices) Cost(model string, u llm.Usage) float64 {
	if p == nil {
		return 0
	}
	price, ok := p.table[model]
	if !ok {
		best := ""
		for m, pr := range p.table {
			if strings.HasPrefix(model, m) && len(m) > len(best) {
				best, price, ok = m, pr, true
			}
		}
	}
	if !ok {
		p.mu.Lock()
		first := !p.warned[model]
		p.warned[model] = true
		p.mu.Unlock()
		if first && p.log != nil {
			p.log.Warn("no price for this LLM model in TICKETFLOW_LLM_PRICES: its calls are counted as costing 0", "model", model)
		}
		return 0
	}
	return (float64(u.InputTokens)*price.InPerMTok + float64(u.OutputTokens)*price.OutPerMTok) / 1e6
}
