//! The container config parses (with the master key it requires set).

#[test]
fn container_config_is_valid() {
    let text = std::fs::read_to_string("deploy/container.yaml").unwrap();
    // SAFETY: single-threaded test binary; the variable is only read by the parse below.
    unsafe { std::env::set_var("SLUICE_MASTER_KEY", "sk-test") };
    let c = sluice::config::parse("deploy/container.yaml", &text).unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:4000");
    assert_eq!(c.deployments[0].base_url, "http://llama:8080/v1");
}
