internal import CNghttp2

/// Manual flow control of the server session: when the windows of received request bytes reopen.
///
/// nghttp2 sends no WINDOW_UPDATE by itself here, so a peer can send no more than its windows beyond what we gave
/// back. A stream starts with a small window (`initialWindowSize`): small requests arrive whole at once. Bytes nobody
/// holds (a refused or answered stream, an unknown one) are given back at once, and so are those of requests admitted
/// on a credential. A stream admitted either way whose message is larger than its initial window gets
/// `admittedStreamWindowSize`.
///
/// An open request (no credential needed) is admitted once the whole announced length of its message is reserved in
/// the connection's and the process's budgets (`ReceiveBudget`): then its stream window is widened and both windows
/// reopen as its bytes arrive. Until then its stream window stays shut (so it holds at most its initial window), and
/// the connection's reopens only within the connection's unadmitted allowance: the peer stalls instead of the server
/// buffering, and the stream waits in `stalledStreams` until room is freed. Reservations are all or nothing, so an
/// admitted message can always arrive completely; everything goes back when the request is handed on, refused,
/// answered or reset.
extension H2ServerSession {
    /// `count` DATA bytes arrived on `streamID`, before they are deframed.
    func bytesArrived(_ count: Int, streamID: Int32) {
        guard let stream = streams[streamID], !stream.responded, stream.budgeted else {
            giveBackWindow(streamID: streamID, connection: count, stream: count)
            return
        }
        stream.receipt.arrived(count)
    }

    /// After a chunk was deframed: admits the message now arriving if there is room for all of it and gives back the
    /// windows of its bytes; a stream left waiting gives back only the connection's window, within the allowance.
    func settleReceipt(_ stream: ServerStream) {
        guard !stream.responded else { return }
        let announced = stream.deframer.announcedLength
        guard stream.budgeted else {
            if let announced { widenStreamWindow(stream, forMessageOf: announced) }
            return
        }
        if !stream.receipt.admitted, let announced {
            // The deframer refused any length beyond its limit, so the sum cannot overflow.
            let wireLength = GRPCFraming.prefixLength + announced
            if receiveBudget.reserve(wireLength) {
                stream.receipt.reserved = wireLength
                receiveBudget.giveBackUnadmitted(stream.receipt.unadmitted)
                stream.receipt.unadmitted = 0
                stream.deframer.reserveCapacityForAnnouncedMessage()
                widenStreamWindow(stream, forMessageOf: announced)
            }
        }
        if stream.receipt.admitted {
            giveBackWindow(stream, connection: stream.receipt.unreturnedToConnection, stream: stream.receipt.unreturnedToStream)
        } else {
            let granted = receiveBudget.takeUnadmitted(upTo: stream.receipt.unreturnedToConnection)
            stream.receipt.unadmitted += granted
            giveBackWindow(stream, connection: granted, stream: 0)
        }
        let waiting = !stream.receipt.admitted && (announced != nil || stream.receipt.unreturnedToConnection > 0)
        if waiting { stalledStreams.insert(stream.id) } else { stalledStreams.remove(stream.id) }
    }

    /// A message of a streaming call was handed on: its reservation goes back, and the windows of its bytes (the
    /// bytes not given back yet are the latest to arrive, so those beyond what is still held were the message's).
    func messageHandedOn(_ stream: ServerStream, wireLength: Int) {
        guard stream.budgeted else { return }
        let held = stream.receipt.held - min(wireLength, stream.receipt.held)
        stream.receipt.held = held
        receiveBudget.release(stream.receipt.reserved)
        stream.receipt.reserved = 0
        let unadmitted = min(stream.receipt.unadmitted, held)
        receiveBudget.giveBackUnadmitted(stream.receipt.unadmitted - unadmitted)
        stream.receipt.unadmitted = unadmitted
        giveBackWindow(
            stream, connection: max(stream.receipt.unreturnedToConnection - held, 0),
            stream: max(stream.receipt.unreturnedToStream - held, 0))
    }

    /// The stream holds none of its request any more (handed on, refused, answered or closed): its reservation, its
    /// share of the unadmitted allowance and every byte of window go back, and waiting streams get another chance.
    func releaseRequestBytes(_ stream: ServerStream) {
        stream.message = nil
        if stream.responded { stream.deframer.discard() }
        let freed = stream.receipt.reserved > 0 || stream.receipt.unadmitted > 0
        receiveBudget.release(stream.receipt.reserved)
        receiveBudget.giveBackUnadmitted(stream.receipt.unadmitted)
        giveBackWindow(stream, connection: stream.receipt.unreturnedToConnection, stream: stream.receipt.unreturnedToStream)
        stream.receipt = StreamReceipt()
        stalledStreams.remove(stream.id)
        if freed { admitStalledStreams() }
    }

    /// Gives streams waiting for room another chance, oldest first (room may have been freed on this connection or,
    /// in the process's budget, on another one). Returns whether any stopped waiting.
    @discardableResult
    package func admitStalledStreams() -> Bool {
        guard !stalledStreams.isEmpty else { return false }
        var admitted = false
        for id in stalledStreams.sorted() {
            guard let stream = streams[id] else {
                stalledStreams.remove(id)
                continue
            }
            settleReceipt(stream)
            if !stalledStreams.contains(id) { admitted = true }
        }
        return admitted
    }

    /// Bytes of open requests' messages admitted on this connection and not handed on yet.
    package var reservedRequestBytes: Int { receiveBudget.reserved }

    /// A stream admitted (or authenticated) whose message is larger than the small initial window may have
    /// `admittedStreamWindowSize` bytes in flight: it then does not wait a round trip per few KiB. Small messages, the
    /// usual case, need no WINDOW_UPDATE.
    private func widenStreamWindow(_ stream: ServerStream, forMessageOf length: Int) {
        guard !stream.receipt.windowWidened, length >= Int(configuration.initialWindowSize) - GRPCFraming.prefixLength else { return }
        stream.receipt.windowWidened = true
        let window = Int32(clamping: configuration.admittedStreamWindowSize)
        guard window > Int32(clamping: configuration.initialWindowSize) else { return }
        let rv = setLocalWindowSize(stream.id, window)
        _ = succeeded(rv, "nghttp2_session_set_local_window_size", stream: stream.id)
    }

    /// Gives back window for bytes of `stream` and lowers what it still owes.
    private func giveBackWindow(_ stream: ServerStream, connection: Int, stream streamBytes: Int) {
        let connection = max(min(connection, stream.receipt.unreturnedToConnection), 0)
        let streamBytes = max(min(streamBytes, stream.receipt.unreturnedToStream), 0)
        stream.receipt.unreturnedToConnection -= connection
        stream.receipt.unreturnedToStream -= streamBytes
        giveBackWindow(streamID: stream.id, connection: connection, stream: streamBytes)
    }

    /// A stream we no longer track (closed, or never a request) gets nothing back for itself: only the connection's
    /// window reopens.
    private func giveBackWindow(streamID: Int32, connection: Int, stream: Int) {
        let open = streams[streamID] != nil
        let rv = consume(streamID, connectionBytes: connection, streamBytes: open ? stream : 0)
        _ = succeeded(rv, "nghttp2_session_consume", stream: streamID)
    }
}
