// Package remoting is the RocketMQ remoting protocol: frame codec, JSON and
// ROCKETMQ binary header encodings, and a TCP transport for servers and
// clients. It knows nothing of storage.
//
// # Frames
//
// Every message on a remoting connection is one frame:
//
//	+--------------+--------------------+--------+------+
//	| total length | serialize | hdrLen | header | body |
//	|   int32 BE   |  1 byte   | 24 bit |        |      |
//	+--------------+--------------------+--------+------+
//
// The total length counts everything after itself. The high byte of the
// second word is the header encoding ([SerializeJSON] = 0 or
// [SerializeRocketMQ] = 1), the low 24 bits the header length. The header
// carries a [Command]'s code, language, version, opaque, flag, remark and
// ext fields; the body is opaque bytes. [Encode] writes a frame in the
// encoding named by Command.SerializeType; [Decode] reads one, refusing a
// frame larger than its limit before allocating for it (and a header of
// more than [MaxExtFields] ext fields before its map grows past them), and
// reports bad input with errors wrapping [ErrFrameTooLarge] or
// [ErrMalformedFrame].
//
// Requests and responses are the same type: flag bit 0 marks a response,
// bit 1 a oneway request, and a response carries its request's opaque.
// Request codes ([ReqSendMessage], ...) and response codes ([RespSuccess],
// ...) are RocketMQ's own numbers.
//
// # Transport
//
// [Listen] starts a [Server]: one read loop per accepted connection, each
// request handed to a [Handler] (usually a [Mux], a table of handlers by
// request code) on its own goroutine, at most MaxInFlight at a time per
// connection and MaxInFlightBytes of request frames over all of them (past
// that, a connection is not read until calls return). A response goes back in the header encoding its request used.
// A code with no handler gets [RespRequestCodeNotSupported]; a malformed or
// oversized frame closes that connection only. [Dial] returns the same
// [*Conn] type for the client side, so either side can [Conn.Invoke] the
// other (the broker sends [ReqCheckTransactionState] and
// [ReqNotifyConsumerIdsChanged] to clients this way).
//
// # Usage
//
//	mux := remoting.NewMux()
//	mux.HandleFunc(remoting.ReqHeartBeat, func(ctx context.Context, c *remoting.Conn, req *remoting.Command) *remoting.Command {
//		return remoting.NewResponse(req, remoting.RespSuccess, "")
//	})
//	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:10911", Handler: mux})
//	defer srv.Close()
//
//	conn, err := remoting.Dial(ctx, srv.Addr().String(), remoting.DialOptions{})
//	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqHeartBeat, nil))
package remoting
