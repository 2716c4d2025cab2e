package broker

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/halfbackmq/halfback/broker/filter"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// expressionSQL92 is RocketMQ's ExpressionType.SQL92.
const expressionSQL92 = "SQL92"

// maxCompiledFilters bounds the compiled expressions the broker keeps;
// past it, or past maxCompiledFilterBytes, the cache starts again empty.
const maxCompiledFilters = 1024

// maxCompiledFilterBytes bounds the cached expressions' text, in bytes: a
// compiled expression takes some 20 times its text (1.3 MB for one of
// filter.MaxLength), and any client may name expressions in its pulls.
const maxCompiledFilterBytes = 1 << 20

// filterCache keeps compiled SQL92 expressions (and their syntax errors)
// by text, so a pull does not parse its group's expression again.
type filterCache struct {
	mu    sync.Mutex
	m     map[string]compiledFilter
	bytes int // the keys' total length
}

type compiledFilter struct {
	expr *filter.Expr
	err  error
}

// compile returns expr compiled, from the cache when it can. It compiles
// without the lock: a long expression does not hold up other pulls.
func (c *filterCache) compile(expr string) (*filter.Expr, error) {
	c.mu.Lock()
	f, ok := c.m[expr]
	c.mu.Unlock()
	if ok {
		return f.expr, f.err
	}
	e, err := filter.Compile(expr)
	if len(expr) > maxCompiledFilterBytes {
		return e, err // never kept (filter.MaxLength is below the bound)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[expr]; !ok {
		if c.m == nil || len(c.m) >= maxCompiledFilters || c.bytes+len(expr) > maxCompiledFilterBytes {
			c.m, c.bytes = make(map[string]compiledFilter), 0
		}
		c.m[expr] = compiledFilter{e, err}
		c.bytes += len(expr)
	}
	return e, err
}

// isTagType reports whether a subscription's expressionType is a tag
// expression (RocketMQ's ExpressionType.isTagType: empty or TAG).
func isTagType(exprType string) bool {
	return exprType == "" || strings.EqualFold(exprType, "TAG")
}

// propertyFilter returns the store filter of a SQL92 expression: a
// record's properties match when the expression is TRUE for them.
func propertyFilter(e *filter.Expr) func(string) bool {
	return func(props string) bool {
		return e.Match(func(name string) (string, bool) { return message.Property(props, name) })
	}
}

// registerCheckClientConfig handles CHECK_CLIENT_CONFIG, which a Java
// push consumer sends on start for a subscription that is not a tag
// expression, as RocketMQ's ClientManageProcessor: a tag subscription (or
// none) is fine; another needs broker.enablePropertyFilter and an
// expression that compiles (SUBSCRIPTION_PARSE_FAILED naming the error).
func (b *Broker) registerCheckClientConfig(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqCheckClientConfig, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		var body struct {
			SubscriptionData *subscription `json:"subscriptionData"`
		}
		if len(req.Body) > 0 {
			if err := json.Unmarshal(req.Body, &body); err != nil {
				return remoting.NewResponse(req, remoting.RespSystemError, "CHECK_CLIENT_CONFIG body: "+err.Error())
			}
		}
		sub := body.SubscriptionData
		if sub == nil || isTagType(sub.ExpressionType) {
			return remoting.NewResponse(req, remoting.RespSuccess, "")
		}
		if resp := b.filterRefusal(req, sub.ExpressionType); resp != nil {
			return resp
		}
		if _, err := b.filters.compile(sub.SubString); err != nil {
			return remoting.NewResponse(req, remoting.RespSubscriptionParseFailed, err.Error())
		}
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
}

// filterSupported reports whether the broker serves subscriptions of
// expression type exprType that is not a tag type: SQL92, with property
// filtering on.
func (b *Broker) filterSupported(exprType string) bool {
	return b.opts.EnablePropertyFilter && strings.EqualFold(exprType, expressionSQL92)
}

// filterRefusal answers a subscription of expression type exprType (not
// a tag type) the broker cannot serve, as RocketMQ; nil means it can.
func (b *Broker) filterRefusal(req *remoting.Command, exprType string) *remoting.Command {
	if !b.filterSupported(exprType) {
		return remoting.NewResponse(req, remoting.RespSystemError, "The broker does not support consumer to filter message by "+exprType)
	}
	return nil
}
