/// The version `dtm-server -v` and `/api/dtmsvr/version` report.
package enum DTMVersion {
    package static let current = "swift-dtm 0.1.0"
}
