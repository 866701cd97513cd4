#![no_main]

libfuzzer_sys::fuzz_target!(init: cairn_fuzz::init(), |data: &[u8]| {
    cairn_fuzz::run(data, cairn_fuzz::sql::sql_target)
});
