#pragma once
// --token-client: the token_client library measured as an application uses it before each new
// database connection: Client::get_token called one at a time, each call a new connection.

#include "token_bench/bench.hpp"
#include "token_bench/options.hpp"
#include "token_bench/stats.hpp"

#include <boost/system/result.hpp>

namespace token_bench {

/// Runs the sequential get_token loop described by validated `options` (token_client set, a
/// Unix target) on the calling thread. Latency is the whole call: connect, request, answer,
/// JSON checks. A 200 with a valid token is a response; a broker error with an HTTP status is a
/// non-200 response; a call without an HTTP answer (connect failure, timeout) is an error.
/// StartError when the first call cannot reach the broker at all.
boost::system::result<Report, StartError> run_client_bench(const Options& options,
                                                           const RunControls& controls = {});

}  // namespace token_bench
