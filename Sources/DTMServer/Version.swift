/// The version `dtm-server -v` and `/api/dtmsvr/version` report.
public enum DTMVersion {
    public static let current = "swift-dtm 0.1.0"
}
