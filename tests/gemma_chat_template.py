"""The chat template of google/codegemma-7b-it, as published in its tokenizer_config.json (the same
template as gemma-7b-it's). It is the reference that tutor.prompts.chat_prompt is compared with;
the tests have no network, so the text is kept here, verbatim.

Checked (2026-12) character for character against the "chat_template" of a copy of codegemma-7b-it's
tokenizer_config.json on GitHub (xiaoxiao0313/codegemma-7b-it, commit 738b380, whose "bos_token" is
"<bos>" and "add_bos_token" true), and against llama.cpp's tests/test-chat-template.cpp entry for
google/gemma-7b-it, which is the same template without the leading ``{{ bos_token }}`` (llama.cpp's
test leaves BOS out of every template).
"""

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
