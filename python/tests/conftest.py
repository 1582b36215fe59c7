import pytest
import torch


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(1234)


# Unit roundoff of each storage dtype: half an ulp at 1.
UNIT = {torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
