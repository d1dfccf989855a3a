/* list.h: every C test, in the order the runner runs them. C2T_LIST_CUDA
 * goes into the CUDA runner (c2-tests-cuda), built when nvcc is found. */
#define C2T_LIST(X)                    \
    X(rng_philox_known_answers)        \
    X(rng_uniform_and_streams)         \
    X(interact_fresnel_normal)         \
    X(interact_fresnel_oblique)        \
    X(interact_total_internal_reflection) \
    X(interact_rayleigh_angular)       \
    X(interact_rayleigh_polarisation)  \
    X(interact_diffuse_lambert)        \
    X(interact_sample_cdf)             \
    X(geometry_ray_mesh_vs_brute_force) \
    X(geometry_watertight)             \
    X(geometry_bvh_invariants)         \
    X(geometry_rejects_bad_input)      \
    X(geometry_default_detector)       \
    X(geometry_content_identity)       \
    X(transport_attenuation)           \
    X(transport_time_of_flight)        \
    X(transport_detection_efficiency)  \
    X(transport_reemission_spectrum)   \
    X(transport_wls_surface)           \
    X(transport_max_steps_guard)       \
    X(transport_nan_guard)             \
    X(transport_sources)               \
    X(transport_detector_pmt_hits)     \
    X(engine_threads_identical)        \
    X(engine_batches_identical)        \
    X(engine_columns_as_records)       \
    X(engine_rejects_bad_events)      \
    X(engine_flag_names)              \
    X(engine_radix_order)             \
    X(engine_team)                    \
    X(engine_cores_follow_affinity)   \
    X(engine_channel_summary)         \
    X(proto_event_round_trip)         \
    X(proto_result_round_trip)        \
    X(proto_events_round_trip)        \
    X(proto_nng_packer_failure)       \
    X(proto_error_reply)              \
    X(proto_rejects_hostile_input)    \
    X(proto_every_truncation_and_corruption) \
    X(daemon_hello_ping_status)       \
    X(daemon_results_match_engine)    \
    X(daemon_submit_many)             \
    X(daemon_cancel_and_deadline)     \
    X(daemon_cancel_before_submit)    \
    X(daemon_busy_when_full)          \
    X(daemon_client_byte_limit)       \
    X(daemon_hostile_messages)        \
    X(daemon_every_offset)            \
    X(daemon_raw_connect_close)       \
    X(daemon_sigterm_drain)           \
    X(daemon_client_killed)           \
    X(daemon_chroma2ctl_exit_codes)   \
    X(daemon_allow_uids)              \
    X(daemon_quick_close_clients)     \
    X(daemon_unusable_socket_path)    \
    X(daemon_option_forms)            \
    X(daemon_tls_listener)            \
    X(daemon_load_geometry)           \
    X(daemon_metrics_endpoint)        \
    X(daemon_backend_failure)

#define C2T_LIST_CUDA(X)               \
    X(cuda_matches_cpu_detector)       \
    X(cuda_matches_cpu_reemission)     \
    X(cuda_rejects_bad_events)         \
    X(cuda_runtime_matches_cpu)        \
    X(cuda_runtime_windows_and_modes_identical) \
    X(cuda_runtime_stop_and_edges)     \
    X(cuda_runtime_feeds_while_running) \
    X(queue_every_item_once)           \
    X(queue_ways_same_work)
